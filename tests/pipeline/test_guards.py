"""--max-video-pixels: a too-large video is refused from its header, before the reader's own checks (frame
count, orientation), with the same reason in step 1 and validate."""

from __future__ import annotations

import json

import pytest

from revise_prep.errors import VIDEO_TOO_LARGE, SampleError
from revise_prep.inputs import parse_entries
from revise_prep.pipeline.stage import WorkItem
from revise_prep.pipeline.step1 import Step1Stage
from revise_prep.pipeline.validate import validate
from revise_prep.settings import FrameSettings
from revise_prep.testing.videos import make_video
from revise_prep.video.guards import check_video_pixels

FRAMES = FrameSettings(frame_num=5, interval=1, height=32, width=48)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    make_video(root / "small.mp4", frames=8, width=64, height=40, seed=1)
    make_video(root / "big.mp4", frames=3, width=160, height=96, seed=2)  # also too short: the guard comes first
    text = "Turn the whole scene into a watercolour painting."
    pairs = [{"source_video_path": "small.mp4", "target_video_path": "big.mp4", "instruction": text},
             {"source_video_path": "small.mp4", "target_video_path": "small.mp4", "instruction": text}]
    (root / "pairs.json").write_text(json.dumps(pairs))
    return root


def test_step1_refuses_before_decoding_and_validate_agrees(data):
    limit = 160 * 96 - 1  # the big video has one pixel too many; the small one passes
    samples, _ = parse_entries(data / "pairs.json", str(data))
    stage = Step1Stage(FRAMES, max_video_pixels=limit)
    with pytest.raises(SampleError) as err:
        stage.decode(WorkItem(0, "big", None, samples[0]))
    assert err.value.reason == VIDEO_TOO_LARGE and "160x96" in err.value.message and "target video" in err.value.message
    stage.decode(WorkItem(1, "small", None, samples[1]))  # under the limit: decoded as usual
    unguarded = Step1Stage(FRAMES, max_video_pixels=0)
    with pytest.raises(SampleError) as err:  # without the guard the reader finds it too short
        unguarded.decode(WorkItem(0, "big", None, samples[0]))
    assert err.value.reason == "insufficient_frames"
    result = validate(data / "pairs.json", FRAMES, video_root=data, max_video_pixels=limit)
    assert [(s.status, s.reason) for s in result.samples] == [("failed", VIDEO_TOO_LARGE), ("ok", None)]
    assert validate(data / "pairs.json", FRAMES, video_root=data).samples[0].reason == err.value.reason


def test_missing_file_is_left_to_the_reader(tmp_path):
    check_video_pixels(tmp_path / "absent.mp4", 1)  # no video_too_large: the reader reports missing_file


def test_step2_refuses_the_source_video_before_decoding(data, tmp_path):
    import torch

    from revise_prep.pipeline.step2 import ArPayload, ArSettings, Step2Stage
    from revise_prep.records.formats import serialize
    from revise_prep.records.schema import step1_record
    from revise_prep.testing.tiny_vila import make_tiny_vila

    vila = make_tiny_vila(tmp_path / "vila")
    rec = step1_record(latent=torch.zeros(1), latent_tgt=torch.zeros(1), prompt="Make it snow everywhere.",
                       text_emb=torch.zeros(2, 4), video_path=str(data / "big.mp4"), frame_num=5, meta={})
    path = tmp_path / "r.pkl"
    path.write_bytes(serialize(rec, path))
    item = WorkItem(0, "r", tmp_path / "out" / "r.pkl", ArPayload(path))
    settings = ArSettings(data_file=str(tmp_path), result_folder=str(tmp_path / "out"), model_path=str(vila))
    with pytest.raises(SampleError) as err:
        Step2Stage(settings=ArSettings(**{**settings.__dict__, "max_video_pixels": 160 * 96 - 1})).decode(item)
    assert err.value.reason == VIDEO_TOO_LARGE and "r.pkl" in err.value.message
    decoded = Step2Stage(settings).decode(item)  # under the default limit the same video is decoded
    assert decoded.data["pixels"] is not None
