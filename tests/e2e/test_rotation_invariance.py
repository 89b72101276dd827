"""A rotated phone video and the same frames stored upright give bit-identical records through `revise-prep run`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from revise_prep.records import load_record
from revise_prep.testing.tiny_vila import make_tiny_vila
from revise_prep.testing.videos import synthetic_frame
from revise_prep.testing.zoo import write_lossless

from .conftest import cli

TEXT = "Make the shapes glow like lanterns in the evening."
MODELS = ["--vae-dtype", "float32", "--t5-dtype", "float32", "--text-len", "16", "--num-workers", "1"]


@pytest.fixture(scope="module")
def phone(tmp_path_factory) -> Path:
    """``phone.mp4``: landscape-stored frames with a 90-degree display matrix; ``upright.mp4``: the same frames
    turned upright (``np.rot90``, as OpenCV and decord turn them), no matrix; both lossless RGB."""
    root = tmp_path_factory.mktemp("phone")
    stored = [synthetic_frame(i, width=80, height=48, seed=3) for i in range(14)]
    write_lossless(root / "phone.mp4", stored, rotation=90)
    write_lossless(root / "upright.mp4", [np.ascontiguousarray(np.rot90(f)) for f in stored])
    pairs = [{"source_video_path": str(root / f"{n}.mp4"), "target_video_path": str(root / f"{n}.mp4"),
              "instruction": TEXT} for n in ("phone", "upright")]
    (root / "pairs.json").write_text(json.dumps(pairs))
    return root


def _records(out: Path) -> dict[str, dict]:
    return {load_record(p)["meta"]["videos"]["source"]["path"].rsplit("/", 1)[-1]: load_record(p)
            for p in (out / "train_list.txt").read_text().split()}


def test_rotated_equals_upright_through_run(phone, wan_release, tmp_path):
    vila = make_tiny_vila(tmp_path / "vila")
    common = ["run", "--input", str(phone / "pairs.json"), "--ckpt-dir", str(wan_release), "--model-path", str(vila),
              "--frame-num", "5", "--sampling-rate", "2", "--target-size", "48,32", *MODELS]
    cli(*common, "--output-dir", str(tmp_path / "run"))
    records = _records(tmp_path / "run")
    a, b = records["phone.mp4"], records["upright.mp4"]
    assert a["meta"]["videos"]["source"]["rotation"] == 90 and b["meta"]["videos"]["source"]["rotation"] == 0
    for key in ("latent_features", "latent_feature_tgt", "vlm_last_hidden_states"):
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("how", ["flag", "config"])
def test_no_auto_rotate_keeps_the_stored_orientation(phone, tmp_path, how):
    """--no-auto-rotate (or ``auto_rotate: false`` in a config file): the phone video stays landscape, so a
    portrait target skips it, as it would stored; the upright copy is still fine."""
    args = ["validate", str(phone / "pairs.json"), "--frame-num", "5", "--sampling-rate", "2", "--target-size", "48,32",
            "--report", str(tmp_path / "r.jsonl"), "--allow-skips"]
    if how == "flag":
        args.append("--no-auto-rotate")
    else:
        (tmp_path / "job.yaml").write_text("auto_rotate: false\n")
        args += ["--config", str(tmp_path / "job.yaml")]
    cli(*args)
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["index"], r["reason"]) for r in lines] == [(0, "orientation_mismatch")]
    assert lines[0]["videos"]["source"]["rotation"] == 0
    if how == "config":
        return
    cli(*args[:-1])  # rotating: both samples are fine, the phone one reported as rotated
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["index"], r["status"], r["videos"]["source"]["rotation"]) for r in lines] == [(0, "ok", 90)]
