"""The resume signature comes from the settings and each checkpoint's identity, never from a loaded model: it
needs no model, changes when a weight file is replaced by another of the same size, and records made before
the identity existed (the signature of e4767de) still resume."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from revise_prep.models.identity import WINDOW, WINDOWS, file_digest
from revise_prep.models.layouts import T5_ORIGINAL_FILE, VAE_ORIGINAL_FILE
from revise_prep.pipeline import resume
from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.engines.base import plan_work
from revise_prep.pipeline.onepass import ArOptions, OnePassFactory
from revise_prep.pipeline.step1 import Step1Factory, plan_items, read_input, run_step1
from revise_prep.pipeline.step2 import ArSettings, Step2Factory
from revise_prep.records.layout import sidecar_of
from revise_prep.settings import ExecutionSettings, FrameSettings, ModelSettings, RunSettings
from revise_prep.testing.tiny_models import make_tiny_wan_release
from revise_prep.testing.tiny_vila import make_tiny_vila

FRAMES = FrameSettings(frame_num=5, interval=2, height=32, width=48)
#: The step-1 signature keys of e4767de (the version before checkpoint identities), written out by hand.
OLD_STEP1_KEYS = {"frame_num", "interval", "skip", "height", "width", "strict_count", "auto_rotate", "vae", "t5",
                  "vae_dtype", "t5_dtype", "text_len", "min_prompt_len", "vae_tiling", "vae_batch"}


def settings(dataset: Path, release: Path, out: Path) -> tuple[RunSettings, ModelSettings]:
    run = RunSettings(input=str(dataset / "pairs.json"), output_dir=str(out), video_root=str(dataset),
                      num_workers=0, progress=False)
    return run, ModelSettings(ckpt_dir=str(release), vae_dtype="float32", t5_dtype="float32", text_len=32,
                              device="cpu")


@pytest.fixture(scope="module")
def vila(tmp_path_factory) -> Path:
    return make_tiny_vila(tmp_path_factory.mktemp("vila") / "tiny_vila")


@pytest.fixture
def no_models(monkeypatch):
    """Building any torch module or reading any weights fails the test loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was constructed (or weights read) to compute a signature")

    monkeypatch.setattr(torch.nn.Module, "__init__", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "load_file", refuse)


def test_signatures_need_no_model(no_models, dataset, wan_release, vila, tmp_path):
    run, models = settings(dataset, wan_release, tmp_path / "out")
    step1 = Step1Factory(run, FRAMES, models).build(None).signature()
    assert step1["vae_weights"].startswith("original:") and step1["t5_weights"].startswith("original:")
    assert set(step1) - OLD_STEP1_KEYS == resume.ADDED_KEYS - {"vila_weights"}
    ar = Step2Factory(ArSettings(data_file="", result_folder=str(tmp_path), model_path=str(vila))).build(None)
    assert ar.signature()["vila"] == f"vila_ar:{vila.resolve()}:mlp_downsample:float16"
    assert ar.signature()["vila_weights"].startswith("vila:")
    onepass = OnePassFactory(run, FRAMES, models, ArOptions(model_path=str(vila))).build(None).signature()
    assert {k: onepass[k] for k in step1} == step1 and onepass["vila_weights"] == ar.signature()["vila_weights"]
    # and the whole resume check (every engine's plan) runs on it
    samples, problems = read_input(run)
    stage = Step1Factory(run, FRAMES, models).build(None)
    plan = plan_work(stage, plan_items(samples, problems, tmp_path / "out"), tmp_path / "out", RankInfo(),
                     ExecutionSettings())
    plan.close()
    assert len(plan.todo) == 9  # every sample but the duplicate


def same_size_other_weights(release: Path, tmp_path: Path) -> Path:
    """Another tiny release (other seed): its weight files have exactly the sizes of ``release``'s."""
    other = make_tiny_wan_release(tmp_path / "other", layout="original", seed=1)
    for name in (VAE_ORIGINAL_FILE, T5_ORIGINAL_FILE):
        assert (other / name).stat().st_size == (release / name).stat().st_size
        assert (other / name).read_bytes() != (release / name).read_bytes()
    return other


def test_a_replaced_weight_file_of_the_same_size_redoes_the_records(dataset, wan_release, tmp_path):
    release = tmp_path / "release"
    shutil.copytree(wan_release, release)
    other = same_size_other_weights(release, tmp_path)
    out = tmp_path / "out"
    run, models = settings(dataset, release, out)
    first = Step1Factory(run, FRAMES, models).build(None).signature()
    assert run_step1(run, FRAMES, models)["by_status"]["done"] == 4
    assert run_step1(run, FRAMES, models)["by_status"]["resumed"] == 4  # unchanged: trusted

    shutil.copy2(other / VAE_ORIGINAL_FILE, release / VAE_ORIGINAL_FILE)  # same path, same size, other weights
    second = Step1Factory(run, FRAMES, models).build(None).signature()
    assert {k for k in first if first[k] != second[k]} == {"vae_weights"}
    summary = run_step1(run, FRAMES, models)
    assert summary["by_status"]["done"] == 4 and "resumed" not in summary["by_status"]  # every record redone
    record = pickle.loads(next(out.glob("*.pkl")).read_bytes())
    assert record["meta"]["settings"]["vae_weights"] == second["vae_weights"]

    shutil.copy2(other / T5_ORIGINAL_FILE, release / T5_ORIGINAL_FILE)
    third = Step1Factory(run, FRAMES, models).build(None).signature()
    assert {k for k in second if second[k] != third[k]} == {"t5_weights"}


def test_records_made_before_the_identity_resume(dataset, wan_release, tmp_path):
    """A folder as e4767de left it: records whose meta holds the old signature, and a .done index of its hash."""
    out = tmp_path / "out"
    run, models = settings(dataset, wan_release, out)
    assert run_step1(run, FRAMES, models)["by_status"]["done"] == 4
    old_sig = None
    for path in out.glob("*.pkl"):
        record = pickle.loads(path.read_bytes())
        record["meta"]["settings"] = {k: v for k, v in record["meta"]["settings"].items() if k in OLD_STEP1_KEYS}
        assert set(record["meta"]["settings"]) == OLD_STEP1_KEYS
        old_sig = resume.signature_hash(record["meta"]["settings"])
        path.write_bytes(pickle.dumps(record))
    done = sidecar_of(out) / ".done"
    for log in done.glob("*.jsonl"):
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        log.write_text("".join(json.dumps({**e, "sig": old_sig, "size": (out / e["name"]).stat().st_size,
                                           "mtime_ns": (out / e["name"]).stat().st_mtime_ns}) + "\n"
                               for e in entries))
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pkl")}
    summary = run_step1(run, FRAMES, models)
    assert summary["by_status"] == {"resumed": 4, **{k: v for k, v in summary["by_status"].items()
                                                     if k not in ("resumed", "done")}}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.pkl")} == before  # not one rewritten
    # ... while a record that holds an identity is judged on it
    path = next(out.glob("*.pkl"))
    record = pickle.loads(path.read_bytes())
    sig = Step1Factory(run, FRAMES, models).build(None).signature()
    record["meta"]["settings"] = {**sig, "vae_weights": "original:0000000000000000"}
    path.write_bytes(pickle.dumps(record))
    assert resume.check_record(path, "vae", sig)[0] == resume.MISMATCHED


def test_large_files_are_hashed_at_spread_windows(tmp_path):
    """A file larger than WINDOWS x WINDOW: a byte changed in its first or last window changes the digest (one
    between two windows does not: the documented limit of a bounded hash)."""
    path = tmp_path / "w.bin"
    size = WINDOWS * WINDOW * 4
    data = bytearray(os.urandom(size))
    path.write_bytes(data)
    base = file_digest(path)
    assert base.startswith(f"{size}:")
    step = (size - WINDOW) / (WINDOWS - 1)
    for offset, seen in ((0, True), (size - 1, True), (round(step) + WINDOW + 10, False)):
        changed = bytearray(data)
        changed[offset] ^= 0xFF
        path.write_bytes(changed)
        assert (file_digest(path) != base) is seen, offset
