"""``load_ar_frames`` on small videos written here with PyAV: sampling, decoding, error codes, black fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from revise_prep import errors
from revise_prep.errors import VideoError
from revise_prep.models.vila import ar_frame_indices, count_frames, load_ar_frames


def _index_of(image) -> int:
    return round(float(np.asarray(image).mean()) / 12)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(81, [0, 11, 22, 33, 45, 56, 67, 79]), (101, [0, 14, 28, 42, 56, 70, 84, 99]),
     (1, [0, -1, -1, -1, -1, -1, -1, -1]), (2, [0] * 8), (9, [0, 1, 2, 3, 4, 5, 6, 7])],
)
def test_ar_frame_indices(n: int, expected: list[int]) -> None:
    assert ar_frame_indices(n) == expected


def test_loads_sampled_frames(tmp_path: Path, write_video) -> None:
    path = write_video(tmp_path / "v.mp4", 20)
    assert count_frames(path) == 20
    frames = load_ar_frames(path)
    assert len(frames) == 8 and all(f.mode == "RGB" and f.size == (64, 48) for f in frames)
    assert [_index_of(f) for f in frames] == ar_frame_indices(20)
    first = load_ar_frames(path, only_first=2)
    assert [np.asarray(f).tolist() for f in first] == [np.asarray(f).tolist() for f in frames[:2]]


def test_one_frame_video_uses_last_frame_not_black(tmp_path: Path, write_video) -> None:
    frames = load_ar_frames(write_video(tmp_path / "one.mp4", 1), on_error="black")
    assert [_index_of(f) for f in frames] == [0] * 8  # -1 = the last (only) frame


@pytest.mark.parametrize(
    ("make", "reason"),
    [(lambda p: p, errors.MISSING_FILE),
     (lambda p: (p.write_bytes(b""), p)[1], errors.EMPTY_FILE),
     (lambda p: (p.write_bytes(b"not a video at all" * 10), p)[1], errors.CANNOT_OPEN)],
)
def test_errors_have_reasons(tmp_path: Path, make, reason: str) -> None:
    path = make(tmp_path / "bad.mp4")
    with pytest.raises(VideoError) as info:
        load_ar_frames(path)
    assert info.value.reason == reason and str(path) in str(info.value)
    black = load_ar_frames(path, on_error="black")
    assert len(black) == 8 and all(f.size == (448, 448) and not np.asarray(f).any() for f in black)


def test_cut_file_is_a_decode_error_even_if_first_frames_decode(tmp_path: Path, write_video) -> None:
    full = write_video(tmp_path / "full.mp4", 40, faststart=True)
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoError) as info:
        load_ar_frames(cut, only_first=1)
    assert info.value.reason == errors.DECODE_ERROR and str(cut) in str(info.value)
    assert all(not np.asarray(f).any() for f in load_ar_frames(cut, on_error="black"))


def test_invalid_on_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_error"):
        load_ar_frames(tmp_path / "x.mp4", on_error="skip")  # type: ignore[arg-type]
