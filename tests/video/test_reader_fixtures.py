"""All 29 golden frame cases: same outcome, interval, indices and pixels as the original read_video_frames."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from revise_prep.errors import CANNOT_OPEN, EMPTY_FILE, VideoError
from revise_prep.settings import FrameSettings
from revise_prep.testing.exact import assert_exact
from revise_prep.video.reader import read_clip
from revise_prep.video.transform import normalise_pixels

CASE_IDS = [f"p{i:02d}" for i in range(29)]


@pytest.fixture(scope="module")
def cases(reference):
    data = json.loads((reference / "frames" / "cases.json").read_text())
    return {c["id"]: c for c in data["cases"]}, data["videos"]


def _settings(c) -> FrameSettings:
    h, w = c["target_size"]
    return FrameSettings(frame_num=c["frame_num"], interval=c["sampling_rate"], skip=c["skip_num"], height=h, width=w)


@pytest.mark.parametrize("case_id", CASE_IDS)
@pytest.mark.parametrize("threads", [0, 2])
def test_case(reference, cases, case_id, threads):
    by_id, videos = cases
    c = by_id[case_id]
    path = reference / c["video"]
    if c["result"] == "tensor":
        clip = read_clip(path, _settings(c), threads=threads)
        expected = load_file(reference / c["file"])[c["key"]]
        assert clip.frames.dtype == torch.float32
        assert tuple(clip.frames.shape) == tuple(c["shape"])
        assert_exact("frames.indices", clip.indices, c["frame_indices"], case=case_id)
        assert_exact("frames.interval", clip.interval, c["effective_sampling_rate"], case=case_id)
        assert clip.requested_interval == c["sampling_rate"]
        assert_exact("frames.count", clip.info.num_frames, c["total_frames_counted"], case=case_id)
        # decode, crop, resize to uint8 and the normalisation table are deterministic: bit for bit
        assert_exact("frames.tensor", clip.frames, expected, case=f"{case_id} threads={threads}")
        if threads == 0:  # the pipeline's uint8 hand-off: normalised later, the same values
            u8 = read_clip(path, _settings(c), dtype=torch.uint8).frames
            assert u8.dtype == torch.uint8 and torch.equal(normalise_pixels(u8), clip.frames)
    elif c["result"] == "none":
        with pytest.raises(VideoError) as err:
            read_clip(path, _settings(c), threads=threads)
        assert err.value.reason == c["none_reason"]
        assert err.value.skip is True
    else:
        assert c["result"] == "error"
        with pytest.raises(VideoError) as err:
            read_clip(path, _settings(c), threads=threads)
        expected_reason = EMPTY_FILE if videos[path.name]["bytes"] == 0 else CANNOT_OPEN
        assert err.value.reason == expected_reason
        assert err.value.skip is False
        assert str(path) in str(err.value)


def test_case_count_matches_readme(cases):
    by_id, _ = cases
    kinds = [c["result"] for c in by_id.values()]
    assert len(by_id) == 29 and kinds.count("tensor") == 21 and kinds.count("none") == 5 and kinds.count("error") == 3
