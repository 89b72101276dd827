"""A third engine is one module behind the ``Engine`` interface: registered by name, step 1 runs on it without
knowing it, with the step's execution settings, and writes the same records and reports as the local engine."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch

from revise_prep import settings as settings_module
from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.engines.base import failure_outcome, finish_run, plan_work, with_shape
from revise_prep.pipeline.engines.local.workers import decode_one
from revise_prep.pipeline.engines.writer import write_record
from revise_prep.pipeline.stage import describer
from revise_prep.pipeline.step1 import run_step1
from revise_prep.records import load_record
from revise_prep.records.layout import sidecar_of
from revise_prep.records.reports import Outcome
from revise_prep.records.shapes import record_shape
from revise_prep.settings import EngineSettings, ExecutionSettings, FrameSettings, ModelSettings, RunSettings


class SerialEngine:
    """Everything in this process, one sample after another: plan, decode + encode + write, finish."""

    runs: list[ExecutionSettings] = []

    def __init__(self, settings: EngineSettings, rank: RankInfo | None = None) -> None:
        self.rank = RankInfo()

    def run(self, factory, items, out: Path, settings: ExecutionSettings, *, loaded=None):
        SerialEngine.runs.append(settings)
        stage = factory.build(self.rank, loaded)
        describe = describer(stage)
        plan = plan_work(stage, items, out, self.rank, settings)
        outcomes = list(plan.outcomes)
        try:
            stage.prepare(plan.todo)
            for item in plan.todo:
                decoded = decode_one(stage.decode, item)
                if decoded.error is not None:
                    outcomes.append(failure_outcome(item, decoded.error, describe(item)))
                    continue
                record = stage.encode(decoded)
                write_record(item.path, record)
                plan.index.add(item.path, plan.sig, record_shape(record))
                outcomes.append(with_shape(Outcome(index=item.index, name=item.name, status="done",
                                                   path=str(item.path), **describe(item)), record_shape(record)))
        finally:
            plan.close()
        return finish_run(stage, out, self.rank, outcomes, 1.0, settings)


def same(a, b) -> bool:
    """Equal key for key, tensors bit for bit (the pickled bytes hold storage addresses, which differ)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@pytest.fixture(scope="module")
def models(wan_release):
    from revise_prep.models.umt5 import UMT5TextEncoder
    from revise_prep.models.wan_vae import WanVAE

    return WanVAE.load(wan_release, dtype="float32"), UMT5TextEncoder.load(wan_release, dtype="float32", text_len=32)


def step1(dataset: Path, out: Path, engine: str, models):
    run = RunSettings(input=str(dataset / "pairs.json"), output_dir=str(out), video_root=str(dataset),
                      num_workers=0, progress=False, relative_paths=True, engine=EngineSettings(name=engine))
    frames = FrameSettings(frame_num=5, interval=2, height=32, width=48)
    return run_step1(run, frames, ModelSettings(), loaded=models, keep_mismatched=True)


def test_a_third_engine_runs_a_step_unchanged(dataset, models, tmp_path, monkeypatch):
    module = types.ModuleType("revise_prep.pipeline.engines.serial")
    module.ENGINE = SerialEngine
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(settings_module, "ENGINE_NAMES", (*settings_module.ENGINE_NAMES, "serial"))
    SerialEngine.runs.clear()
    serial = step1(dataset, tmp_path / "serial", "serial", models)
    local = step1(dataset, tmp_path / "local", "local", models)

    assert SerialEngine.runs == [ExecutionSettings(num_workers=0, progress=False, relative_paths=True,
                                                   keep_mismatched=True)]  # the step's options, typed
    assert serial["by_status"] == local["by_status"] and serial["by_status"]["done"] >= 3
    lists = [[Path(line) for line in (sidecar_of(tmp_path / name) / "vae_features.txt").read_text().splitlines()]
             for name in ("serial", "local")]
    assert not lists[0][0].is_absolute()  # --relative-paths reached the finish
    assert [p.name for p in lists[0]] == [p.name for p in lists[1]] and len(lists[0]) == serial["by_status"]["done"]
    for path in lists[0]:
        a, b = load_record(tmp_path / "serial" / path.name), load_record(tmp_path / "local" / path.name)
        assert same(a, b), path.name
    failures = [[(f["index"], f["reason"], f.get("source")) for f in map(json.loads, (sidecar_of(tmp_path / name) /
                 "failures.jsonl").read_text().splitlines())] for name in ("serial", "local")]
    assert failures[0] == failures[1] and failures[0]
    assert json.loads((sidecar_of(tmp_path / "serial") / "config.json").read_text())["world_size"] == 1
