"""Every zoo video through the public reader against the original's own decoders, run here.

Step 1's reference is OpenCV + PIL (``testing.originals.opencv_clip``), step 2's is decord 0.6.0, at the versions
requirements-lock.txt pins (OpenCV 5.1). Where they agree with PyAV the outcome, interval, indices and every pixel
must be identical; where the original's decoder is broken or build-dependent (``ZooVideo.opencv`` / ``.decord``)
we assert what we do instead: the frames a plain PyAV decode gives (``testing.originals.pyav_frames``), with the
original's outcome kept.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from revise_prep.errors import VideoError
from revise_prep.models.vila.frames import load_ar_frames
from revise_prep.settings import FrameSettings
from revise_prep.testing.originals import crop_resize_all, decord_ar_frames, opencv_clip, opencv_frames, pyav_frames
from revise_prep.testing.zoo import SAME, UNREADABLE, ZOO
from revise_prep.video import frames_to_tensor, probe_video, read_clip
from revise_prep.video.notes import decoder_notes

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (test extra) is the original step 1's decoder")
BY_NAME = {v.name: v for v in ZOO}
TARGETS = {"landscape": (32, 48), "portrait": (48, 32)}


@pytest.fixture(scope="module")
def opencv(zoo):
    """OpenCV's full decode of each zoo video, once (the original counts frames by decoding everything)."""
    return {name: opencv_frames(path) for name, path in zoo.items()}


def _ours(path, target):
    try:
        clip = read_clip(path, FrameSettings(frame_num=5, interval=3, height=target[0], width=target[1]),
                         dtype=torch.uint8)
    except VideoError as err:
        return err.reason, None
    return "ok", clip


@pytest.mark.parametrize("orientation", TARGETS)
@pytest.mark.parametrize("name", list(BY_NAME))
def test_step1_frames_as_opencv(zoo, opencv, name, orientation):
    video, target = BY_NAME[name], TARGETS[orientation]
    ref = opencv_clip(zoo[name], 5, 3, *target, decoded=opencv[name])
    outcome, clip = _ours(zoo[name], target)
    assert outcome == ref.outcome, (outcome, ref.outcome, f"OpenCV {cv2.__version__}")
    if ref.outcome != "ok":
        return
    assert (clip.interval, clip.indices) == (ref.interval, ref.indices)
    ours = clip.frames.permute(0, 2, 3, 1).numpy()
    if video.opencv == SAME:
        assert np.array_equal(ours, ref.frames), (np.abs(ours.astype(int) - ref.frames.astype(int)).max(),
                                                  f"OpenCV {cv2.__version__}")
        return
    assert not np.array_equal(ours, ref.frames)  # build-dependent conversions: they do differ (else mark it SAME)
    expected = crop_resize_all([pyav_frames(zoo[name])[i] for i in clip.indices], *target)
    assert np.array_equal(ours, expected)
    assert ours.max() > 0


@pytest.mark.parametrize("name", list(BY_NAME))
def test_ar_frames_as_decord(zoo, name):
    pytest.importorskip("decord", reason="decord 0.6.0 (test extra) is the original step 2's decoder")
    video = BY_NAME[name]
    ours = np.stack([np.asarray(im) for im in load_ar_frames(zoo[name])])
    ref = decord_ar_frames(zoo[name])
    if video.decord == SAME:
        assert not isinstance(ref, str), ref
        assert np.array_equal(ours, ref[1]), np.abs(ours.astype(int) - ref[1].astype(int)).max()
        return
    if video.decord == UNREADABLE:
        assert isinstance(ref, str)  # upstream then uses 8 black frames; we decode the video
    else:  # decord returns other frames, or converts them differently: they do differ (else mark it SAME)
        assert not isinstance(ref, str) and not np.array_equal(ours, ref[1])
    frames = pyav_frames(zoo[name])
    idx = np.linspace(0, len(frames) - 2, 8, dtype=int)
    assert np.array_equal(ours, np.stack([frames[i] for i in idx]))


@pytest.mark.parametrize("name", list(BY_NAME))
def test_probe_facts(zoo, opencv, name):
    """Displayed size as OpenCV reports it; interlacing, bit depth and HDR as the zoo wrote them."""
    video = BY_NAME[name]
    info = probe_video(zoo[name])
    assert info.display_size == opencv[name][1]
    assert (info.width, info.height) == (video.width, video.height)
    assert info.interlaced == ("interlaced" in video.tags)
    assert (info.bit_depth > 8) == ("10bit" in video.tags)
    assert info.hdr == ("hdr" in video.tags)
    notes = decoder_notes(info)
    assert ("interlaced" in notes) == ("interlaced" in video.tags)
    assert ("av1" in notes) == ("av1" in video.tags)
    assert bool({"high_bit_depth", "hdr"} & set(notes)) == ("10bit" in video.tags)


def test_no_auto_rotate_keeps_the_stored_frames(zoo):
    path = zoo["rot90"]
    s = FrameSettings(frame_num=5, interval=3, height=32, width=48, auto_rotate=False)  # stored landscape
    clip = read_clip(path, s)
    assert clip.rotation == 0 and clip.info.rotation == 90
    stored = pyav_frames(path, rotate=False)
    assert np.array_equal(clip.frames.numpy(), frames_to_tensor([stored[i] for i in clip.indices], 32, 48).numpy())
