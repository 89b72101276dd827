"""read_clip / read_frames_rgb on generated videos: rules, errors, early stop, identity with a full decode."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from revise_prep.errors import (CANNOT_OPEN, DECODE_ERROR, EMPTY_FILE, INSUFFICIENT_FRAMES, MISSING_FILE,
                                ORIENTATION_MISMATCH, VideoError)
from revise_prep.settings import FrameSettings
from revise_prep.testing.videos import make_empty, make_not_a_video, make_truncated, make_video
from revise_prep.video import reader as reader_mod
from revise_prep.video.probe import count_frames_decode, probe_video
from revise_prep.video.reader import iter_frames_rgb, read_clip, read_frames_rgb
from revise_prep.video.transform import frames_to_tensor


def full_decode(path) -> list[np.ndarray]:
    """Every frame, RGB, straight from PyAV (independent of the reader)."""
    out = []
    with av.open(str(path)) as c:
        try:
            for f in c.decode(video=0):
                out.append(f.to_ndarray(format="rgb24"))
        except av.error.InvalidDataError:
            pass
    return out


@pytest.fixture(scope="module")
def vids(tmp_path_factory):
    d = tmp_path_factory.mktemp("reader")
    v = {
        "land": make_video(d / "land.mp4", frames=30, width=96, height=64),
        "portrait": make_video(d / "portrait.mp4", frames=21, width=48, height=80, seed=5),
        "short": make_video(d / "short.mp4", frames=10, width=64, height=48, seed=7),
        "fast": make_video(d / "fast.mp4", frames=40, width=64, height=48, gop=8, faststart=True, seed=2),
        "rot": make_video(d / "rot.mp4", frames=9, width=64, height=48, rotation=90),
        "text": make_not_a_video(d / "text.mp4"),
        "empty": make_empty(d / "empty.mp4"),
    }
    v["cut"] = make_truncated(v["fast"], d / "cut.mp4", 0.6)
    return v


def test_landscape_clip_equals_full_decode(vids):
    s = FrameSettings(frame_num=5, interval=3, skip=2, height=32, width=48)
    clip = read_clip(vids["land"], s)
    assert clip.indices == [2, 5, 8, 11, 14] and clip.interval == 3 and clip.requested_interval == 3
    frames = full_decode(vids["land"])
    expected = frames_to_tensor([frames[i] for i in clip.indices], 32, 48)
    assert torch.equal(clip.frames, expected)
    assert clip.info.num_frames == 30


def test_interval_lowered_then_all_frames(vids):
    # 10 frames, 9 wanted at interval 2: 9*2 > 10 -> interval 1 (9*1 <= 10)
    clip = read_clip(vids["short"], FrameSettings(frame_num=9, interval=2, height=16, width=16))
    assert clip.interval == 1 and clip.indices == list(range(9))
    frames = full_decode(vids["short"])
    assert torch.equal(clip.frames, frames_to_tensor(frames[:9], 16, 16))


def test_strict_count_off_by_one(vids):
    # 10 frames, 5 at interval 2 from skip 1: strict needs 11 (lowered to 1), exact rule needs 10 (kept).
    strict = read_clip(vids["short"], FrameSettings(frame_num=5, interval=2, skip=1, height=16, width=16))
    loose = read_clip(vids["short"], FrameSettings(frame_num=5, interval=2, skip=1, height=16, width=16,
                                                   strict_count=False))
    assert strict.interval == 1 and loose.interval == 2 and loose.indices[-1] == 9


def test_too_short_is_a_skip(vids):
    with pytest.raises(VideoError) as err:
        read_clip(vids["short"], FrameSettings(frame_num=9, interval=1, skip=2, height=16, width=16))
    assert err.value.reason == INSUFFICIENT_FRAMES and err.value.skip


def test_too_short_reported_before_orientation(vids):
    with pytest.raises(VideoError) as err:
        read_clip(vids["portrait"], FrameSettings(frame_num=21, interval=1, skip=1, height=16, width=32))
    assert err.value.reason == INSUFFICIENT_FRAMES


def test_portrait(vids):
    with pytest.raises(VideoError) as err:
        read_clip(vids["portrait"], FrameSettings(frame_num=5, interval=1, height=16, width=32))
    assert err.value.reason == ORIENTATION_MISMATCH and err.value.skip
    clip = read_clip(vids["portrait"], FrameSettings(frame_num=5, interval=4, height=40, width=24))
    assert clip.frames.shape == (5, 3, 40, 24) and clip.indices == [0, 4, 8, 12, 16]
    frames = full_decode(vids["portrait"])
    assert torch.equal(clip.frames, frames_to_tensor([frames[i] for i in clip.indices], 40, 24))


@pytest.mark.parametrize("key, reason", [("text", CANNOT_OPEN), ("empty", EMPTY_FILE)])
def test_unopenable(vids, key, reason):
    with pytest.raises(VideoError) as err:
        read_clip(vids[key], FrameSettings(frame_num=1, interval=1, height=8, width=8))
    assert err.value.reason == reason and not err.value.skip and str(vids[key]) in str(err.value)


def test_missing(tmp_path):
    with pytest.raises(VideoError) as err:
        read_clip(tmp_path / "gone.mp4", FrameSettings(frame_num=1, height=8, width=8))
    assert err.value.reason == MISSING_FILE


def test_cut_file_uses_decodable_count(vids):
    n = count_frames_decode(vids["cut"])
    assert 0 < n < 40
    frames = full_decode(vids["cut"])
    assert len(frames) == n
    clip = read_clip(vids["cut"], FrameSettings(frame_num=5, interval=8, height=16, width=16))
    assert clip.info.num_frames == n
    assert clip.interval == max(r for r in range(1, 9) if n >= 5 * r)
    assert torch.equal(clip.frames, frames_to_tensor([frames[i] for i in clip.indices], 16, 16))


def test_cut_file_with_overstated_count_is_a_decode_error(vids):
    """If the count promises frames that do not decode (header trusted), the reader must say so."""
    promised = probe_video(vids["cut"], method="metadata")
    assert promised.num_frames == 40
    n = count_frames_decode(vids["cut"])
    with pytest.raises(VideoError) as err:
        read_clip(vids["cut"], FrameSettings(frame_num=9, interval=4, height=16, width=16), info=promised)
    assert err.value.reason == DECODE_ERROR and not err.value.skip
    assert str(vids["cut"]) in str(err.value) and f"only {n} frames decoded" in str(err.value)
    with pytest.raises(VideoError) as err:
        read_frames_rgb(vids["cut"], [0, 39])
    assert err.value.reason == DECODE_ERROR and f"after {n} decoded frames" in str(err.value)


def test_early_stop(vids, monkeypatch):
    """The decoder is not asked for frames past the last wanted one (decoding every frame)."""
    monkeypatch.setattr(reader_mod, "SKIPPABLE_CODECS", frozenset())
    pulled = []
    real_open = reader_mod.open_video

    class Spy:
        """Wraps the container, recording every frame the reader pulls from the decoder."""

        def __init__(self, container):
            self._c = container

        def __getattr__(self, name):
            return getattr(self._c, name)

        def decode(self, *a, **k):
            for f in self._c.decode(*a, **k):
                pulled.append(f.pts)
                yield f

    def spying_open(path):
        container, stream, size = real_open(path)
        return Spy(container), stream, size

    monkeypatch.setattr(reader_mod, "open_video", spying_open)
    got = read_frames_rgb(vids["land"], [3, 7])
    assert len(pulled) == 8
    frames = full_decode(vids["land"])
    assert np.array_equal(got[0], frames[3]) and np.array_equal(got[1], frames[7])


def test_read_frames_rgb_order_and_repeats(vids):
    frames = full_decode(vids["land"])
    got = read_frames_rgb(vids["land"], [10, 0, 10, 29])
    assert len(got) == 4 and got[0].dtype == np.uint8 and got[0].shape == (64, 96, 3)
    for g, i in zip(got, [10, 0, 10, 29]):
        assert np.array_equal(g, frames[i])
    assert read_frames_rgb(vids["land"], []) == []


def test_threads_give_identical_frames(vids):
    s = FrameSettings(frame_num=9, interval=3, height=32, width=48)
    a = read_clip(vids["fast"], s, threads=0)
    b = read_clip(vids["fast"], s, threads=2)
    assert torch.equal(a.frames, b.frames) and a.indices == b.indices


def test_iter_frames_rgb_yields_in_order(vids):
    idx = [i for i, _ in iter_frames_rgb(vids["land"], [9, 1, 5])]
    assert idx == [1, 5, 9]


def test_rotation_applied_by_default_and_optional(vids):
    s = FrameSettings(frame_num=1, interval=1, height=24, width=32)
    raw = full_decode(vids["rot"])[0]
    # --no-auto-rotate: the stored orientation, matrix still reported
    plain = read_clip(vids["rot"], FrameSettings(frame_num=1, interval=1, height=24, width=32, auto_rotate=False))
    assert abs(plain.info.rotation) == 90 and plain.rotation == 0
    assert torch.equal(plain.frames[0], frames_to_tensor([raw], 24, 32)[0])
    # Default, like OpenCV's auto-orientation: the video becomes portrait (48 wide, 64 high): a landscape target skips.
    with pytest.raises(VideoError) as err:
        read_clip(vids["rot"], s)
    assert err.value.reason == ORIENTATION_MISMATCH and "rotated by 90" in err.value.message
    rotated = read_clip(vids["rot"], FrameSettings(frame_num=1, interval=1, height=32, width=24))
    turned = np.ascontiguousarray(np.rot90(raw, k=(plain.info.rotation // 90) % 4))
    assert turned.shape == (64, 48, 3) and rotated.rotation == 90
    assert torch.equal(rotated.frames[0], frames_to_tensor([turned], 32, 24)[0])
    # the settings' choice can be overridden per call
    assert read_clip(vids["rot"], s, auto_rotate=False).rotation == 0


def test_extra_indices_come_from_the_same_pass(tmp_path):
    """The one-pass command's AR frames: raw RGB equal to a separate decode; the clip is unchanged."""
    from revise_prep.settings import FrameSettings
    from revise_prep.testing.videos import make_video
    from revise_prep.video import read_clip, read_frames_rgb

    path = make_video(tmp_path / "v.mp4", frames=30, width=64, height=40, seed=4)
    settings = FrameSettings(frame_num=5, interval=2, height=32, width=48)
    plain = read_clip(path, settings)
    extra = [0, 3, 7, 28, 28]
    both = read_clip(path, settings, extra_indices=extra)
    assert torch.equal(plain.frames, both.frames) and plain.indices == both.indices
    assert plain.extra == {}
    expected = read_frames_rgb(path, sorted(set(extra)))
    assert sorted(both.extra) == sorted(set(extra))
    for idx, rgb in zip(sorted(set(extra)), expected):
        assert np.array_equal(both.extra[idx], rgb)
    beyond = read_clip(path, settings, extra_indices=[40])  # past the end: absent, the clip still complete
    assert beyond.extra == {} and torch.equal(beyond.frames, plain.frames)
