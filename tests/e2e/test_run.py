"""`run` (one pass) equals `vae` then `ar`, tensor for tensor, bit for bit on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from revise_prep.records import iter_dataset, load_record
from revise_prep.records.layout import sidecar_of
from revise_prep.records.schema import AR_CAPTION_KEYS, AR_KEYS
from revise_prep.testing.tiny_vila import make_tiny_vila

from .conftest import FRAMES, cli

MODELS = ["--vae-dtype", "float32", "--t5-dtype", "float32", "--text-len", "32"]


@pytest.fixture(scope="module")
def vila(tmp_path_factory) -> Path:
    return make_tiny_vila(tmp_path_factory.mktemp("vila") / "tiny_vila")


@pytest.fixture(scope="module")
def both(tmp_path_factory, dataset, wan_release, vila):
    root = tmp_path_factory.mktemp("run")
    common = ["--input", str(dataset / "pairs.json"), "--video-root", str(dataset), "--ckpt-dir", str(wan_release),
              *MODELS, *FRAMES, "--num-workers", "1"]
    cli("vae", *common, "--output-dir", str(root / "vae"), status=4)
    cli("ar", "--data-file", str(sidecar_of(root / "vae") / "vae_features.txt"), "--model-path", str(vila), "--result-folder",
        str(root / "ar"), "--video-root", str(dataset), "--num-workers", "1")
    cli("run", *common, "--model-path", str(vila), "--output-dir", str(root / "run"), "--keep-intermediate", status=4)
    return root


def test_run_equals_vae_then_ar(both):
    two_step = (both / "ar" / "ar_features.txt").read_text().splitlines()
    one_pass = (both / "run" / "train_list.txt").read_text().splitlines()
    assert [Path(p).name for p in one_pass] == [Path(p).name for p in two_step] and len(one_pass) == 4
    for a_path, b_path in zip(two_step, one_pass):
        a, b = load_record(a_path), load_record(b_path)
        assert set(a) == set(b)
        assert set(a) - {"meta"} in (set(AR_KEYS), set(AR_CAPTION_KEYS))
        for key in a:
            if key == "meta":
                continue
            va, vb = a[key], b[key]
            if isinstance(va, list):
                assert len(va) == len(vb) and all(torch.equal(x, y) and x.dtype == y.dtype for x, y in zip(va, vb))
            elif isinstance(va, torch.Tensor):
                assert va.dtype == vb.dtype and torch.equal(va, vb), (b_path, key)
            else:
                assert va == vb, key
    assert len(list(iter_dataset(both / "run" / "train_list.txt"))) == 4


def test_same_failures_and_intermediate_records(both):
    def reasons(path):
        return {f["index"]: f["reason"] for f in map(json.loads, path.read_text().splitlines())}

    assert reasons(both / "run" / "failures.jsonl") == reasons(sidecar_of(both / "vae") / "failures.jsonl")
    kept = (sidecar_of(both / "run" / "vae_features") / "vae_features.txt").read_text().splitlines()
    step1 = (sidecar_of(both / "vae") / "vae_features.txt").read_text().splitlines()
    assert [Path(p).name for p in kept] == [Path(p).name for p in step1]
    for a, b in zip(step1, kept):
        ra, rb = load_record(a), load_record(b)
        assert torch.equal(ra["latent_feature"], rb["latent_feature"])
        assert torch.equal(ra["text_emb"][0], rb["text_emb"][0])


def test_run_resumes(both, dataset, wan_release, vila):
    out = both / "run"
    before = {p: Path(p).stat().st_mtime_ns for p in (out / "train_list.txt").read_text().splitlines()}
    cli("run", "--input", str(dataset / "pairs.json"), "--video-root", str(dataset), "--ckpt-dir", str(wan_release),
        *MODELS, *FRAMES, "--num-workers", "0", "--model-path", str(vila), "--output-dir", str(out), status=4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["by_status"].get("resumed") == 4 and "done" not in summary["by_status"]
    assert all(Path(p).stat().st_mtime_ns == t for p, t in before.items())


def test_safetensors_format_end_to_end(both, dataset, wan_release, vila):
    """--format safetensors through both steps gives the same tensors as the pickle records."""
    out = both / "st"
    cli("vae", "--input", str(dataset / "pairs.json"), "--video-root", str(dataset), "--ckpt-dir", str(wan_release),
        *MODELS, *FRAMES, "--num-workers", "0", "--output-dir", str(out / "vae"), "--format", "safetensors",
        status=4)
    cli("ar", "--data-file", str(out / "vae"), "--model-path", str(vila), "--result-folder", str(out / "ar"),
        "--video-root", str(dataset), "--num-workers", "0", "--format", "safetensors")
    st = (out / "ar" / "ar_features.txt").read_text().splitlines()
    ref = (both / "ar" / "ar_features.txt").read_text().splitlines()
    assert all(p.endswith(".safetensors") for p in st)
    st = sorted(st, key=lambda p: Path(p).stem)  # a folder input is read in name order, the list in input order
    ref = sorted(ref, key=lambda p: Path(p).stem)
    assert [Path(p).stem for p in st] == [Path(p).stem for p in ref]
    for a, b in zip(ref, st):
        ra, rb = load_record(a), load_record(b)
        assert torch.equal(ra["vlm_last_hidden_states"], rb["vlm_last_hidden_states"])
        assert torch.equal(ra["latent_features"], rb["latent_features"])
        assert torch.equal(ra["t5_emb"][0], rb["t5_emb"][0]) and ra["prompt"] == rb["prompt"]
