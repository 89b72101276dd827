"""The video zoo through the CLI: `validate` and `vae` give OpenCV's outcome, interval, indices and frames.

Each zoo video is one caption sample (one clip each, the cheapest record). Expected values come from the
original's step-1 reader on OpenCV (``testing.originals``), or from a plain PyAV decode where OpenCV is broken
or build-dependent, encoded by the same tiny VAE in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from revise_prep.records.layout import sidecar_of
from revise_prep.records import load_record
from revise_prep.testing.originals import crop_resize_all, opencv_clip, pyav_frames
from revise_prep.testing.zoo import SAME, ZOO

from .conftest import cli

pytest.importorskip("cv2", reason="opencv-python-headless (test extra) is the original step 1's decoder")
FRAMES = ["--frame-num", "5", "--sampling-rate", "3", "--target-size", "32,48"]
TEXT = "Colourful shapes drift over a gradient while the light slowly changes."


@pytest.fixture(scope="module")
def captions(tmp_path_factory, zoo) -> Path:
    root = tmp_path_factory.mktemp("zoo_cli")
    entries = [{"video": str(zoo[v.name]), "conversations": [{"from": "gpt", "value": f"{TEXT} ({v.name})"}]}
               for v in ZOO]
    (root / "zoo.json").write_text(json.dumps(entries))
    return root


@pytest.fixture(scope="module")
def originals(zoo):
    return {v.name: opencv_clip(zoo[v.name], 5, 3, 32, 48) for v in ZOO}


def test_validate_reports_rotation_interlacing_depth_hdr(captions, originals):
    report = captions / "validate.jsonl"
    proc = cli("validate", str(captions / "zoo.json"), *FRAMES, "--report", str(report), "--allow-skips")
    lines = {r["index"]: r for r in map(json.loads, report.read_text().splitlines())}
    for i, v in enumerate(ZOO):
        line = lines.get(i)
        ref = originals[v.name]
        assert (line["reason"] if line and line["reason"] else "ok") == ref.outcome, v.name
        facts = line["videos"]["source"] if line else {}
        assert facts.get("rotation", 0) == v.rotation % 360, v.name
        assert bool(facts.get("interlaced")) == ("interlaced" in v.tags)
        assert (facts.get("bit_depth") or 8) == (10 if "10bit" in v.tags else 8)
        assert bool(facts.get("hdr")) == ("hdr" in v.tags)
    assert "rotated upright (display matrix): 90 deg: 1, 180 deg: 1, 270 deg: 2" in proc.stdout, proc.stdout
    assert "interlaced: 1;" in proc.stdout and "HDR (PQ/HLG): 1" in proc.stdout


def test_vae_outcomes_indices_and_frames(captions, originals, zoo, wan_release):
    out = captions / "vae"
    cli("vae", "--input", str(captions / "zoo.json"), "--output-dir", str(out), "--ckpt-dir", str(wan_release),
        "--vae-dtype", "float32", "--t5-dtype", "float32", "--text-len", "16", *FRAMES, "--num-workers", "1")
    failures = {f["index"]: f["reason"] for f in map(json.loads, (sidecar_of(out) / "failures.jsonl").read_text().splitlines())}
    records = {r["meta"]["sample_index"]: r for r in map(load_record, (sidecar_of(out) / "vae_features.txt").read_text().split())}
    from revise_prep.models.wan_vae import WanVAE

    vae = WanVAE.load(wan_release, dtype="float32")
    for i, v in enumerate(ZOO):
        ref = originals[v.name]
        if ref.outcome != "ok":
            assert failures.get(i) == ref.outcome, v.name
            continue
        assert i in records, (v.name, failures.get(i))
        meta = records[i]["meta"]["videos"]["source"]
        assert meta["rotation"] == v.rotation % 360
        assert (meta["interval"], meta["indices"]) == (ref.interval, ref.indices)
        if v.opencv == SAME:
            frames = ref.frames
        else:  # what we decode instead (documented in the README's Exactness section)
            assert meta["original_decoder"]
            frames = crop_resize_all([pyav_frames(zoo[v.name])[k] for k in meta["indices"]], 32, 48)
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)[None]
        expected = vae.encode(pixels)[0]
        got = records[i]["latent_feature"]
        # float32 convolutions may differ in the last bits with another thread count; one pixel level does not
        assert (got - expected).abs().max() < 1e-5, v.name
        if i == 0:
            nudged = pixels.clone()
            nudged[0, 0, 0, 0, 0] ^= 1
            assert (vae.encode(nudged)[0] - expected).abs().max() > 1e-5  # the tolerance does tell pixels apart
