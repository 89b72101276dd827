"""Frame counting without decoding must equal a full decode (the original's count) on every video."""

from __future__ import annotations

import json

import pytest

from revise_prep.errors import CANNOT_OPEN, EMPTY_FILE, MISSING_FILE, VideoError
from revise_prep.testing.exact import assert_exact
from revise_prep.testing.videos import make_empty, make_not_a_video, make_truncated, make_video
from revise_prep.video.probe import count_frames_decode, probe_video


def _videos(reference):
    return json.loads((reference / "frames" / "cases.json").read_text())["videos"]


OPENABLE = ["source_0.mp4", "source_1.mp4", "source_2.mp4", "portrait_360x640.mp4", "short_18f_320x180.mp4",
            "square_640x640.mp4", "truncated_faststart.mp4"]


@pytest.mark.parametrize("name", OPENABLE)
@pytest.mark.parametrize("method", ["auto", "packets"])
def test_fixture_counts_equal_full_decode(reference, name, method):
    facts = _videos(reference)[name]
    path = reference / "videos" / name
    info = probe_video(path, method=method)
    assert_exact("probe.frame_count", info.num_frames, facts["decoded_frame_count_upstream"], case=f"{name} {method}")
    assert_exact("probe.frame_count", count_frames_decode(path), facts["decoded_frame_count_upstream"], case=name)
    assert (info.width, info.height) == (facts["width"], facts["height"])
    assert info.fps == pytest.approx(facts["cv2_prop_fps"])
    assert info.rotation == 0 and info.codec == "h264"
    if name == "truncated_faststart.mp4":
        assert info.count_method == "decode"  # the index promises 60 frames, data for fewer survives
    else:
        assert info.count_method == ("metadata" if method == "auto" else "packets")


def test_metadata_alone_would_be_wrong_on_the_cut_file(reference):
    """Guards the truncation check: the header count (60) is not what the original uses (24)."""
    info = probe_video(reference / "videos" / "truncated_faststart.mp4", method="metadata")
    assert info.num_frames == 60


@pytest.mark.parametrize("name, reason", [("empty.mp4", EMPTY_FILE), ("not_a_video.mp4", CANNOT_OPEN),
                                          ("truncated_no_moov.mp4", CANNOT_OPEN)])
def test_fixture_unopenable(reference, name, reason):
    path = reference / "videos" / name
    with pytest.raises(VideoError) as err:
        probe_video(path)
    assert err.value.reason == reason
    assert str(path) in str(err.value)
    assert err.value.skip is False


def test_missing_file(tmp_path):
    with pytest.raises(VideoError) as err:
        probe_video(tmp_path / "nope.mp4")
    assert err.value.reason == MISSING_FILE


def test_generated_broken_files(tmp_path):
    with pytest.raises(VideoError) as err:
        probe_video(make_empty(tmp_path / "e.mp4"))
    assert err.value.reason == EMPTY_FILE
    with pytest.raises(VideoError) as err:
        probe_video(make_not_a_video(tmp_path / "t.mp4"))
    assert err.value.reason == CANNOT_OPEN and "t.mp4" in str(err.value)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("probe")
    vids = {
        "land": make_video(d / "land.mp4", frames=23, width=96, height=64),
        "portrait": make_video(d / "portrait.mp4", frames=14, width=48, height=80, seed=3),
        "mpeg4": make_video(d / "mpeg4.mp4", frames=11, width=64, height=48, codec="mpeg4"),
        "mkv": make_video(d / "clip.mkv", frames=17, width=64, height=48),
        "fast": make_video(d / "fast.mp4", frames=40, width=64, height=48, gop=8, faststart=True),
        "rot": make_video(d / "rot.mp4", frames=5, width=64, height=48, rotation=90),
    }
    vids["cut"] = make_truncated(vids["fast"], d / "cut.mp4", 0.6)
    vids["cut_moov_end"] = make_truncated(vids["land"], d / "cut_end.mp4", 0.6)
    return vids


@pytest.mark.parametrize("key, frames", [("land", 23), ("portrait", 14), ("mpeg4", 11), ("mkv", 17), ("fast", 40),
                                         ("rot", 5)])
@pytest.mark.parametrize("method", ["auto", "packets", "decode"])
def test_generated_counts(generated, key, frames, method):
    info = probe_video(generated[key], method=method)
    assert info.num_frames == frames
    assert count_frames_decode(generated[key]) == frames


def test_generated_sizes_and_rotation(generated):
    p = probe_video(generated["portrait"])
    assert (p.width, p.height, p.fps) == (48, 80, 20.0)
    assert p.display_size == (80, 48)
    r = probe_video(generated["rot"])
    assert abs(r.rotation) == 90
    assert (r.width, r.height) == (64, 48)
    assert r.display_size == (64, 48)  # (height, width): shown as 48 wide, 64 high
    assert probe_video(generated["rot"], read_rotation=False).rotation == 0


def test_mkv_has_no_trusted_metadata(generated):
    # Matroska has no per-frame index, so the count must come from packets, not metadata.
    assert probe_video(generated["mkv"]).count_method == "packets"


def test_generated_cut_file_counts_decodable_frames(generated):
    decoded = count_frames_decode(generated["cut"])
    assert 0 < decoded < 40
    info = probe_video(generated["cut"])
    assert info.num_frames == decoded
    assert info.count_method == "decode"
    assert probe_video(generated["cut"], method="metadata").num_frames == 40


def test_generated_cut_before_index(generated):
    with pytest.raises(VideoError) as err:
        probe_video(generated["cut_moov_end"])
    assert err.value.reason == CANNOT_OPEN


def test_unknown_method_rejected(generated):
    with pytest.raises(ValueError):
        probe_video(generated["land"], method="guess")


def test_probe_open_returns_a_container_at_the_start(generated):
    from revise_prep.video.probe import probe_open

    for key in ("land", "mkv", "cut"):
        container, stream, info = probe_open(generated[key])
        try:
            n = 0
            try:
                for _ in container.decode(stream):
                    n += 1
            except Exception:  # noqa: BLE001 - a cut file ends with a decoder error
                pass
        finally:
            container.close()
        assert n == info.num_frames == count_frames_decode(generated[key])
