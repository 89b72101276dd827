"""Step 1 end to end through the CLI: records, reports, resume, two ranks, original flag names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from revise_prep.records import iter_dataset, load_record
from revise_prep.records.layout import sidecar_of
from revise_prep.records.schema import STEP1_KEYS
from revise_prep.settings import FrameSettings
from revise_prep.video import read_clip

from .conftest import FRAMES, cli

EXPECTED_FAILURES = {2: "orientation_mismatch", 3: "insufficient_frames", 4: "cannot_open", 6: "short_prompt",
                     7: "duplicate_sample", 8: "cannot_open"}  # 8: download cut before the moov index


@pytest.fixture(scope="module")
def step1(tmp_path_factory, dataset, wan_release):
    out = tmp_path_factory.mktemp("step1") / "out"
    cli("vae", "--ckpt-dir", str(wan_release), "--input", str(dataset / "pairs.json"), "--video-root", str(dataset),
        "--output-dir", str(out), "--num-workers", "2", "--vae-dtype", "float32", "--t5-dtype", "float32",
        "--text-len", "32", *FRAMES, status=4)  # two samples fail (cannot_open): exit status 4
    return out


def failures(out: Path) -> dict[int, dict]:
    return {f["index"]: f for f in map(json.loads, (sidecar_of(out) / "failures.jsonl").read_text().splitlines())}


def test_outcomes_and_reports(step1):
    fails = failures(step1)
    for index, reason in EXPECTED_FAILURES.items():
        assert fails[index]["reason"] == reason, fails[index]
        assert fails[index]["message"]
    assert set(fails) == set(EXPECTED_FAILURES)
    listed = (sidecar_of(step1) / "vae_features.txt").read_text().splitlines()
    names = [Path(p).stem for p in listed]
    # pair 5 has the same target name as pair 0: it gets a hash suffix instead of being lost
    assert names[0] == "a_tgt" and names[2].startswith("a_tgt-") and names[1] == "b_tgt"
    assert len(names) == 4 == len(set(names))  # 0, 1, 5 and the caption sample 9
    summary = json.loads((sidecar_of(step1) / "summary.json").read_text())
    assert summary["by_status"]["done"] == 4 and summary["samples"] == 10
    # target stems: a_tgt for samples 0, 2, 3, 4, 5 and b_tgt for 1, 6, 8, 9 (7 is a duplicate): 4 + 3 renamed
    assert summary.get("renamed_collisions") == 7


def test_records_have_exact_keys_and_values(step1, dataset, wan_release):
    from revise_prep.models.umt5 import UMT5TextEncoder
    from revise_prep.models.wan_vae import WanVAE

    listed = (sidecar_of(step1) / "vae_features.txt").read_text().splitlines()
    rec = load_record(listed[1])  # pair 1: b_src (80x48) -> b_tgt (64x40)
    assert set(rec) == set(STEP1_KEYS) | {"meta"}
    assert rec["prompt"] == "Make the shapes glow." and rec["video_path"] == str(dataset / "videos" / "b_src.mp4")
    assert rec["meta"]["videos"]["source"]["path"] == "videos/b_src.mp4"  # the input's own spelling
    assert rec["meta"]["videos"]["target"]["file"] == str(dataset / "videos" / "b_tgt.mp4")
    assert rec["frame_num"] == 5 and isinstance(rec["text_emb"], list) and len(rec["text_emb"]) == 1
    assert rec["latent_feature"].shape == (16, 2, 4, 6) and rec["latent_feature"].dtype == torch.float32
    meta = rec["meta"]
    assert meta["sample_type"] == "Style Edits" and meta["videos"]["target"]["indices"] == [0, 2, 4, 6, 8]
    assert meta["videos"]["source"]["interval"] == 2 and meta["videos"]["source"]["width"] == 80
    # the same numbers computed directly from the models (independent of the pipeline's batching/workers)
    vae = WanVAE.load(wan_release, dtype="float32")
    t5 = UMT5TextEncoder.load(wan_release, dtype="float32", text_len=32)
    settings = FrameSettings(frame_num=5, interval=2, height=32, width=48)
    for key, video in (("latent_feature", "b_src"), ("latent_feature_tgt", "b_tgt")):
        frames = read_clip(dataset / "videos" / f"{video}.mp4", settings).frames
        expected = vae.encode(frames.permute(1, 0, 2, 3)[None].float())[0]
        assert torch.equal(rec[key], expected), key
    assert torch.equal(rec["text_emb"][0], t5.encode(["Make the shapes glow."])[0])
    caption = load_record(listed[3])
    assert "latent_feature_tgt" not in caption and caption["prompt"].startswith("Colourful")


def test_training_reader(step1):
    samples = list(iter_dataset(sidecar_of(step1) / "vae_features.txt"))
    assert len(samples) == 4
    assert all(isinstance(s["text_emb"], torch.Tensor) and s["text_emb"].ndim == 2 for s in samples)


def test_resume_does_nothing_and_redoes_broken(step1, dataset, wan_release):
    listed = (sidecar_of(step1) / "vae_features.txt").read_text().splitlines()
    mtimes = {p: os.stat(p).st_mtime_ns for p in listed}
    Path(listed[1]).write_bytes(Path(listed[1]).read_bytes()[:100])  # a truncated record from a crash
    proc = cli("vae", "--ckpt_dir", str(wan_release), "--video_list_path", str(dataset / "pairs.json"),
               "--video-root", str(dataset), "--output_dir", str(step1), "--vae-dtype", "float32",
               "--t5-dtype", "float32", "--text-len", "32", "--frame_num", "5", "--sampling_rate", "2",
               "--target_size", "32,48", "--num-workers", "0", status=4)
    summary = json.loads((sidecar_of(step1) / "summary.json").read_text())
    assert summary["by_status"]["done"] == 1 and summary["by_status"]["resumed"] == 3, proc.stderr[-2000:]
    assert (sidecar_of(step1) / "vae_features.txt").read_text().splitlines() == listed
    for p in listed:
        if p != listed[1]:
            assert os.stat(p).st_mtime_ns == mtimes[p]
    load_record(listed[1])


def test_changed_settings_are_redone(step1, dataset, wan_release, tmp_path):
    out = tmp_path / "o"
    common = ["vae", "--ckpt-dir", str(wan_release), "--input", str(dataset / "pairs.json"), "--video-root",
              str(dataset), "--output-dir", str(out), "--vae-dtype", "float32", "--t5-dtype", "float32",
              "--text-len", "32", "--num-workers", "0", "--target-size", "32,48", "--frame-num", "5"]
    cli(*common, "--sampling-rate", "2", status=4)
    cli(*common, "--sampling-rate", "1", status=4)
    summary = json.loads((sidecar_of(out) / "summary.json").read_text())
    assert summary["by_status"]["done"] == 4 and "resumed" not in summary["by_status"]
    cli(*common, "--sampling-rate", "2", "--keep-mismatched", status=4)
    assert json.loads((sidecar_of(out) / "summary.json").read_text())["by_status"]["resumed"] == 4


def test_two_ranks_match_single_process(step1, dataset, wan_release, tmp_path):
    out = tmp_path / "ranks"
    args = ["vae", "--ckpt-dir", str(wan_release), "--input", str(dataset / "pairs.json"), "--video-root",
            str(dataset), "--output-dir", str(out), "--vae-dtype", "float32", "--t5-dtype", "float32",
            "--text-len", "32", "--num-workers", "1", *FRAMES]
    import subprocess
    import sys
    procs = [subprocess.Popen([sys.executable, "-m", "revise_prep", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env={**os.environ, "RANK": str(r), "WORLD_SIZE": "2",
                                                           "LOCAL_RANK": str(r)}) for r in range(2)]
    statuses = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        statuses.append((p.returncode, "merges the reports" in err.decode()))
    # the rank that finished first exits 0 (torchrun would stop the others on a non-zero status); the one
    # that merged exits with the whole run's status: 4, two samples failed
    assert sorted(statuses) == [(0, True), (4, False)], err.decode()[-3000:]
    single = [Path(p).name for p in (sidecar_of(step1) / "vae_features.txt").read_text().splitlines()]
    merged = [Path(p).name for p in (sidecar_of(out) / "vae_features.txt").read_text().splitlines()]
    assert merged == single
    assert failures(out).keys() == failures(step1).keys()
    metas = {}
    for name in merged:
        a, b = load_record(step1 / name), load_record(out / name)
        assert torch.equal(a["latent_feature"], b["latent_feature"])
        assert torch.equal(a["text_emb"][0], b["text_emb"][0])
        metas[name] = b["meta"]["sample_index"]
    summary = json.loads((sidecar_of(out) / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["by_status"]["done"] == 4
