"""The shared loop: a hanging decode is cut by the timeout, a failing encode is recorded, the rest complete."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from revise_prep.errors import SampleError
from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.engines.local.runner import run_stage
from revise_prep.pipeline.stage import Decoded, WorkItem
from revise_prep.records.reader import load_record
from revise_prep.settings import ExecutionSettings


class SleepyStage:
    """A minimal stage: item 1 'hangs' in decode, item 2 fails in encode, item 3 raises a skip."""

    step = "vae"
    list_name = "list.txt"

    def signature(self):
        return {"v": 1}

    def decode(self, item: WorkItem) -> Decoded:
        if item.index == 1:
            time.sleep(30)  # a decoder that never returns in time
        if item.index == 3:
            raise SampleError("insufficient_frames", "too short", skip=True)
        return Decoded(item, torch.full((2,), float(item.index)))

    def encode(self, decoded: Decoded):
        if decoded.item.index == 2:
            raise RuntimeError("CUDA out of memory (pretend)")
        return {"latent_feature": decoded.data, "latent_feature_tgt": decoded.data, "prompt": "p",
                "text_emb": [decoded.data[None]], "video_path": "v", "frame_num": 1,
                "meta": {"step": "vae", "settings": self.signature()}}


@pytest.mark.parametrize("workers", [0, 1])
def test_timeout_and_failures_do_not_stop_the_run(tmp_path: Path, workers: int):
    items = [WorkItem(i, f"r{i}", tmp_path / f"r{i}.pkl") for i in range(5)]
    start = time.perf_counter()
    summary = run_stage(SleepyStage(), items, tmp_path, RankInfo(),
                        ExecutionSettings(num_workers=workers, progress=False, decode_timeout=1.0))
    assert time.perf_counter() - start < 20
    fails = {f["index"]: f for f in map(json.loads, (tmp_path / "failures.jsonl").read_text().splitlines())}
    assert {i: f["reason"] for i, f in fails.items()} == {1: "decode_timeout", 2: "encode_error",
                                                         3: "insufficient_frames"}
    assert fails[3]["status"] == "skipped" and fails[1]["status"] == "failed"
    assert "out of memory" in fails[2]["message"]
    listed = (tmp_path / "list.txt").read_text().splitlines()
    assert [Path(p).name for p in listed] == ["r0.pkl", "r4.pkl"]
    assert torch.equal(load_record(listed[1])["latent_feature"], torch.full((2,), 4.0))
    assert summary["by_status"] == {"done": 2, "failed": 2, "skipped": 1}
