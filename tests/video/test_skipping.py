"""Skipping unwanted non-reference H.264 frames: the kept frames are those of a full decode, bit for bit."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import torch

from revise_prep.settings import FrameSettings
from revise_prep.testing.videos import make_video, make_vfr_video
from revise_prep.video import reader as reader_mod
from revise_prep.video.reader import read_clip, read_frames_rgb
from revise_prep.video.skipping import demux_all, worth_skipping


def full_decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def nonref_count(path) -> int:
    """Frames FFmpeg drops with skip_frame=NONREF over the whole file (independent of the reader)."""
    with av.open(str(path)) as c:
        total = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        st.codec_context.skip_frame = "NONREF"
        return total - sum(1 for _ in c.decode(st))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("skip")
    return {"moving": make_video(d / "moving.mp4", frames=40, width=96, height=64, seed=3),
            "vfr": make_vfr_video(d / "vfr.mkv", frames=30, width=64, height=48, seed=1),
            "noise": make_video(d / "noise.mp4", frames=20, width=64, height=48, pattern="noise")}


@pytest.fixture
def spy(monkeypatch):
    """Counts the frames that come out of the decoder while skipping."""
    seen = {"frames": 0}
    real = reader_mod._skipping_frames

    def counting(*args):
        for frame in real(*args):
            seen["frames"] += 1
            yield frame

    monkeypatch.setattr(reader_mod, "_skipping_frames", counting)
    return seen


def test_worth_skipping():
    assert not worth_skipping([]) and not worth_skipping([0, 1, 2]) and not worth_skipping([0])
    assert worth_skipping([0, 2]) and worth_skipping([1]) and worth_skipping([0, 1, 3])


def test_ranks_follow_the_decoded_order(videos):
    for key in ("moving", "vfr"):
        with av.open(str(videos[key])) as c:
            decoded_pts = [f.pts for f in c.decode(video=0)]
        with av.open(str(videos[key])) as c:
            demuxed = demux_all(c, c.streams.video[0])
        assert [demuxed.ranks[p] for p in decoded_pts] == list(range(len(decoded_pts)))
        assert len(demuxed.packets) == len(decoded_pts)
        with av.open(str(videos[key])) as c:
            assert demux_all(c, c.streams.video[0], max_bytes=100) is None  # too big to keep in memory


def test_too_big_to_buffer_decodes_every_frame(videos, monkeypatch, spy):
    monkeypatch.setattr(reader_mod, "demux_all", lambda c, s: demux_all(c, s, max_bytes=100))
    frames = full_decode(videos["moving"])
    wanted = [0, 3, 6, 20]
    for g, i in zip(read_frames_rgb(videos["moving"], wanted), wanted):
        assert np.array_equal(g, frames[i]), i
    assert spy["frames"] == 0  # the skipping path never ran


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("interval,skip", [(2, 0), (3, 1), (4, 3)])
def test_skipping_keeps_exact_frames(videos, spy, caplog, threads, interval, skip):
    assert nonref_count(videos["moving"]) >= 10  # the test video really has frames to skip
    s = FrameSettings(frame_num=5, interval=interval, skip=skip, height=32, width=48)
    with caplog.at_level(logging.INFO, logger="revise_prep.video.reader"):
        clip = read_clip(videos["moving"], s, threads=threads, dtype=torch.uint8)
    assert "decoding every frame instead" not in caplog.text  # skipping itself gave the frames, no fallback
    frames = full_decode(videos["moving"])
    assert clip.indices == [skip + k * interval for k in range(5)]
    assert spy["frames"] < clip.indices[-1] + 1  # some unwanted frames were never decoded
    got = read_frames_rgb(videos["moving"], clip.indices, threads=threads)
    for g, i in zip(got, clip.indices):
        assert np.array_equal(g, frames[i]), i


def test_clip_equals_the_clip_of_a_full_decode(videos, monkeypatch):
    s = FrameSettings(frame_num=9, interval=4, height=32, width=48)
    skipping = read_clip(videos["moving"], s)
    monkeypatch.setattr(reader_mod, "SKIPPABLE_CODECS", frozenset())
    plain = read_clip(videos["moving"], s)
    assert torch.equal(skipping.frames, plain.frames) and skipping.indices == plain.indices


def test_variable_frame_rate_and_nothing_to_skip(videos):
    for key in ("vfr", "noise"):
        frames = full_decode(videos[key])
        wanted = [1, 4, 9, 15]
        for g, i in zip(read_frames_rgb(videos[key], wanted), wanted):
            assert np.array_equal(g, frames[i]), (key, i)


@pytest.mark.parametrize("shift_from", [6, 0])  # as if frame 6 were dropped / the first frame were not shown
def test_misplaced_frames_fall_back_to_a_full_decode(videos, monkeypatch, caplog, shift_from):
    """Timestamps that do not place the frames (here: ranks made wrong on purpose, as if the decoder had
    dropped frame 6) are caught, and the video is decoded again frame by frame, as without skipping."""
    def wrong(container, stream):
        demuxed = demux_all(container, stream)
        demuxed.ranks = {p: (r + 1 if r >= shift_from else r) for p, r in demuxed.ranks.items()}
        return demuxed

    monkeypatch.setattr(reader_mod, "demux_all", wrong)
    frames = full_decode(videos["moving"])
    wanted = [0, 2, 4, 6, 12, 20, 30]
    with caplog.at_level(logging.INFO, logger="revise_prep.video.reader"):
        got = read_frames_rgb(videos["moving"], wanted)
    assert "decoding every frame instead" in caplog.text
    for g, i in zip(got, wanted):
        assert np.array_equal(g, frames[i]), i
