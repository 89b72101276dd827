"""Aspect and frame buckets end to end: which bucket each sample gets, records equal to the original's rule at
that size (computed here independently with PyAV + PIL), per-shape lists, resume, and no change without flags."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from revise_prep.records import load_record
from revise_prep.records.layout import sidecar_of
from revise_prep.settings import FrameSettings, ModelSettings, RunSettings
from revise_prep.testing.videos import make_video

from .conftest import cli

TEXT = "Turn the whole scene into a watercolour painting, please."
VIDEOS = {"land": (64, 40, 20), "land_t": (64, 40, 20), "port": (40, 64, 14), "port_t": (40, 64, 14),
          "square": (48, 48, 14), "square_t": (48, 48, 14), "ultra": (96, 32, 14), "short": (64, 40, 7),
          "tiny": (64, 40, 3)}
PAIRS = [("land", "land_t"), ("port", "port_t"), ("square", "square_t"), ("ultra", "land_t"), ("land", "short"),
         ("short", None), ("tiny", "land_t"), ("port", "land_t")]
#: sample -> (bucket height, width, frame count) under BUCKETS / FRAME_BUCKETS at interval 2
EXPECTED = {0: (32, 48, 9), 1: (48, 32, 9), 2: (32, 32, 9), 3: (32, 48, 9), 4: (32, 48, 5), 5: (32, 48, 5),
            7: (48, 32, 9)}
BUCKETS, FRAME_BUCKETS = "32x48,48x32,32x32", "9,5"
PLAIN = FrameSettings(frame_num=9, interval=2, height=32, width=48)
MODELS = ["--vae-dtype", "float32", "--t5-dtype", "float32", "--text-len", "32"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bucketdata")
    for i, (name, (w, h, n)) in enumerate(VIDEOS.items()):
        make_video(root / f"{name}.mp4", frames=n, width=w, height=h, seed=i)
    entries = []
    for i, (src, tgt) in enumerate(PAIRS):
        if tgt is None:
            entries.append({"video": f"{src}.mp4", "conversations": [{"from": "gpt", "value": f"{TEXT} {i}"}]})
        else:
            entries.append({"source_video_path": f"{src}.mp4", "target_video_path": f"{tgt}.mp4",
                            "instruction": f"{TEXT} {i}"})
    (root / "pairs.json").write_text(json.dumps(entries))
    return root


@pytest.fixture(scope="module")
def models(wan_release):
    from revise_prep.models.umt5 import UMT5TextEncoder
    from revise_prep.models.wan_vae import WanVAE

    return WanVAE.load(wan_release, dtype="float32"), UMT5TextEncoder.load(wan_release, dtype="float32", text_len=32)


def step1(data: Path, out: Path, frames: FrameSettings, models, num_workers: int = 0, **options):
    from revise_prep.pipeline.step1 import run_step1

    run = RunSettings(input=str(data / "pairs.json"), output_dir=str(out), video_root=str(data),
                      num_workers=num_workers, progress=False, **options)
    return run_step1(run, frames, ModelSettings(), loaded=models)


@pytest.fixture(scope="module")
def bucketed(tmp_path_factory, data, wan_release) -> Path:
    out = tmp_path_factory.mktemp("bucketed") / "out"
    cli("vae", "--ckpt-dir", str(wan_release), "--input", str(data / "pairs.json"), "--video-root", str(data),
        "--output-dir", str(out), "--num-workers", "1", *MODELS, "--sampling-rate", "2", "--buckets", BUCKETS,
        "--frame-buckets", FRAME_BUCKETS)
    return out


def by_index(out: Path, list_name: str = "vae_features.txt") -> dict[int, dict]:
    return {(rec := load_record(p))["meta"]["sample_index"]: rec for p in (sidecar_of(out) / list_name).read_text().splitlines()}


def assert_meta_describes(rec: dict) -> None:
    """Every size, frame count and interval in meta is the one the record was made with: the tensors' shapes
    (the tiny VAE: 4x in time, 8x in space), the frame indices taken, the bucket."""
    meta = rec["meta"]
    s = meta["settings"] if "frame_num" in meta["settings"] else meta["vae_settings"]  # ar: step 1's settings
    f, h, w = s["frame_num"], s["height"], s["width"]
    assert rec["frame_num"] == f
    for key in ("latent_feature", "latent_features", "latent_feature_tgt"):
        if key in rec:
            assert tuple(rec[key].shape[1:]) == ((f - 1) // 4 + 1, h // 8, w // 8), key
    if "bucket" in meta:
        assert meta["bucket"]["size"] == [h, w] and meta["bucket"]["frame_num"] == f
    for role, v in meta["videos"].items():
        indices = v["indices"]
        assert len(indices) == f and indices[0] == s["skip"], role
        assert all(b - a == v["interval"] for a, b in zip(indices, indices[1:])), role
        assert v["requested_interval"] == s["interval"] >= v["interval"] >= 1, role


def reference_clip(path: Path, n: int, interval: int, h: int, w: int) -> tuple[torch.Tensor, int]:
    """SPEC §Step 1 written out directly: decode everything, lower the interval, centre crop, PIL resize, normalise."""
    with av.open(str(path)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    rate = interval
    while rate > 0 and len(decoded) < n * rate:
        rate -= 1
    assert rate > 0
    r = w / h
    out = []
    for k in range(n):
        img = decoded[k * rate]
        sh, sw = img.shape[:2]
        ch, cw = (int(sw / r), sw) if sw < sh * r else (sh, int(sh * r))
        top, left = round((sh - ch) / 2), round((sw - cw) / 2)
        pil = Image.fromarray(img).crop((left, top, left + cw, top + ch)).resize((w, h), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float().div(255)
        out.append(x.sub(0.5).div(0.5))
    return torch.stack(out), rate


def test_each_sample_gets_its_bucket_and_the_original_rule_at_that_size(bucketed, data, models):
    vae, _ = models
    records = by_index(bucketed)
    assert set(records) == set(EXPECTED)  # 6 (3 frames) is too short even for 5 frames
    fails = [json.loads(line) for line in (sidecar_of(bucketed) / "failures.jsonl").read_text().splitlines()]
    assert [(f["index"], f["reason"]) for f in fails] == [(6, "insufficient_frames")]
    for index, (h, w, n) in EXPECTED.items():
        rec = records[index]
        src, tgt = PAIRS[index]
        bucket = rec["meta"]["bucket"]
        assert (bucket["size"], bucket["frame_num"], rec["frame_num"]) == ([h, w], n, n), index
        assert_meta_describes(rec)
        assert "size_reason" in bucket and "frame_reason" in bucket
        for key, video in (("latent_feature", src), ("latent_feature_tgt", tgt)):
            if video is None:
                assert key not in rec
                continue
            frames, rate = reference_clip(data / f"{video}.mp4", n, 2, h, w)
            role = "source" if key == "latent_feature" else "target"
            assert rec["meta"]["videos"][role]["interval"] == rate
            expected = vae.encode(frames.permute(1, 0, 2, 3)[None])[0]
            assert rec[key].shape == expected.shape and torch.equal(rec[key], expected), (index, key)


def test_shape_lists_and_summary(bucketed):
    full = (sidecar_of(bucketed) / "vae_features.txt").read_text().splitlines()
    groups: dict[str, list[int]] = {}
    for index, (h, w, n) in sorted(EXPECTED.items()):
        groups.setdefault(f"{n}x{h}x{w}", []).append(index)
    written = sorted(p.name for p in sidecar_of(bucketed).glob("vae_features.*.txt"))
    assert written == sorted(f"vae_features.{s}.txt" for s in groups)
    for shape, indices in groups.items():
        lines = (sidecar_of(bucketed) / f"vae_features.{shape}.txt").read_text().splitlines()
        assert [load_record(p)["meta"]["sample_index"] for p in lines] == indices
        assert all(line in full for line in lines)
        assert len({tuple(load_record(p)["latent_feature"].shape) for p in lines}) == 1
    summary = json.loads((sidecar_of(bucketed) / "summary.json").read_text())
    assert summary["buckets"] == {s: len(i) for s, i in groups.items()}
    assert summary["min_bucket_records"] == 64 and summary["small_buckets"] == summary["buckets"]  # all tiny
    from revise_prep.records.inspect import inspect_list

    info = inspect_list(sidecar_of(bucketed) / "vae_features.txt")
    assert info["buckets"] == summary["buckets"] and info["warnings"]  # the full list mixes shapes
    assert info["small_buckets"] == summary["small_buckets"]  # under the default 64
    assert inspect_list(sidecar_of(bucketed) / "vae_features.9x32x48.txt", min_bucket_records=2)["warnings"] == []
    assert len(inspect_list(sidecar_of(bucketed) / "vae_features.9x32x48.txt", min_bucket_records=3)["warnings"]) == 1
    out = cli("inspect", str(sidecar_of(bucketed) / "vae_features.txt"), "--min-bucket-records", "2").stdout
    out = " ".join(out.split())
    assert "WARNING: latent_feature has 4 different shapes" in out and "2 x 5x32x48" in out
    assert "WARNING: 1 of 4 buckets hold fewer than 2 records (9x32x32 1)" in out


def test_resume_keeps_shapes_and_bucket_set_is_in_the_signature(bucketed, data, models, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(bucketed, out)
    shutil.copytree(sidecar_of(bucketed), sidecar_of(out))
    for p in sidecar_of(out).glob("vae_features*.txt"):  # the copy's lists point at the copy's records
        p.write_text(p.read_text().replace(str(bucketed), str(out)))
    frames = FrameSettings(frame_num=9, interval=2, buckets=((32, 48), (48, 32), (32, 32)), frame_buckets=(9, 5))
    before = {p.name: p.read_text() for p in sidecar_of(out).glob("vae_features.*.txt")}
    summary = step1(data, out, frames, models)  # the done index is trusted (no record is read)
    assert summary["by_status"].get("resumed") == 7 and "done" not in summary["by_status"]
    assert {p.name: p.read_text() for p in sidecar_of(out).glob("vae_features.*.txt")} == before
    shutil.rmtree(sidecar_of(out) / ".done")  # now every record is read to check it; shapes come from the meta
    summary = step1(data, out, frames, models)
    assert summary["by_status"].get("resumed") == 7
    assert {p.name: p.read_text() for p in sidecar_of(out).glob("vae_features.*.txt")} == before
    other = FrameSettings(frame_num=9, interval=2, buckets=((32, 48), (48, 32)), frame_buckets=(9, 5))
    summary = step1(data, out, other, models)  # another bucket set: every record is redone
    assert summary["by_status"].get("done") == 7 and "resumed" not in summary["by_status"]
    assert not (sidecar_of(out) / "vae_features.9x32x32.txt").exists()  # the square bucket is gone: its stale list too
    assert summary["buckets"]["9x32x48"] == 3  # the square pair now goes to the first of two tied buckets


def test_without_flags_nothing_changes(data, models, tmp_path):
    """The plain run has no bucket keys anywhere; a one-bucket run makes the same tensors as the plain run."""
    plain = tmp_path / "plain"
    summary = step1(data, plain, PLAIN, models)
    assert "buckets" not in summary and not list(sidecar_of(plain).glob("vae_features.*.txt"))
    records = by_index(plain)
    assert set(records) == {0, 2, 3}  # the original keeps 3 of 8: orientation and frame-count skips
    fails = {json.loads(line)["index"]: json.loads(line)["reason"]
             for line in (sidecar_of(plain) / "failures.jsonl").read_text().splitlines()}
    assert fails == {1: "orientation_mismatch", 4: "insufficient_frames", 5: "insufficient_frames",
                     6: "insufficient_frames", 7: "orientation_mismatch"}
    one = tmp_path / "one"
    step1(data, one, FrameSettings(frame_num=9, interval=2, buckets=((32, 48),), frame_buckets=(9,)), models)
    same = by_index(one)
    for index, rec in records.items():
        meta = rec["meta"]
        assert_meta_describes(rec)
        assert_meta_describes(same[index])
        assert "bucket" not in meta and not {"buckets", "frame_buckets"} & set(meta["settings"])
        assert same[index]["meta"]["bucket"]["size"] == [32, 48]
        for key in rec:
            if key != "meta":
                a, b = rec[key], same[index][key]
                assert torch.equal(a[0], b[0]) if isinstance(a, list) else \
                    (torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b), (index, key)
        assert {k: v for k, v in same[index]["meta"].items() if k not in ("bucket", "settings")} == \
            {k: v for k, v in meta.items() if k != "settings"}
        assert {k: v for k, v in same[index]["meta"]["settings"].items() if k not in ("buckets", "frame_buckets")} \
            == meta["settings"]  # the one bucket's size and count are the plain run's


def test_ar_and_run_keep_the_buckets(bucketed, data, wan_release, tmp_path):
    """Step 2 records keep the step-1 shape lists; `run` (safetensors, JSON meta) writes the same and resumes."""
    from revise_prep.pipeline.onepass import ArOptions, run_onepass
    from revise_prep.pipeline.step2 import ArSettings, run_step2
    from revise_prep.testing.tiny_vila import make_tiny_vila

    vila = make_tiny_vila(tmp_path / "vila")
    step1_lists = {p.name.removeprefix("vae_features.").removesuffix(".txt"): [Path(x).stem for x in p.read_text().splitlines()]
                   for p in sidecar_of(bucketed).glob("vae_features.*.txt")}
    summary = run_step2(ArSettings(data_file=str(sidecar_of(bucketed) / "vae_features.txt"), result_folder=str(tmp_path / "ar"),
                                   model_path=str(vila), video_root=str(data), num_workers=0, progress=False))
    ar_lists = {p.name.removeprefix("ar_features.").removesuffix(".txt"): [Path(x).stem for x in p.read_text().splitlines()]
                for p in (tmp_path / "ar").glob("ar_features.*.txt")}
    assert ar_lists == step1_lists and summary["buckets"] == {k: len(v) for k, v in step1_lists.items()}
    for line in (tmp_path / "ar" / "ar_features.txt").read_text().splitlines():
        assert_meta_describes(load_record(line))
    frames = FrameSettings(frame_num=9, interval=2, buckets=((32, 48), (48, 32), (32, 32)), frame_buckets=(9, 5))
    run = RunSettings(input=str(data / "pairs.json"), output_dir=str(tmp_path / "run"), video_root=str(data),
                      num_workers=0, progress=False, record_format="safetensors")
    models = ModelSettings(ckpt_dir=str(wan_release), text_len=32, t5_dtype="float32")
    summary = run_onepass(run, frames, models, ArOptions(model_path=str(vila)), keep_intermediate=True)
    for folder, stem in ((tmp_path / "run", "train_list"), (sidecar_of(tmp_path / "run" / "vae_features"), "vae_features")):
        lists = {p.name.removeprefix(f"{stem}.").removesuffix(".txt"): [Path(x).stem for x in p.read_text().splitlines()]
                 for p in folder.glob(f"{stem}.*.txt")}
        assert lists == step1_lists, folder
    assert summary["buckets"] == {k: len(v) for k, v in step1_lists.items()}
    for line in (tmp_path / "run" / "train_list.txt").read_text().splitlines():
        assert_meta_describes(load_record(line))
    shutil.rmtree(tmp_path / "run" / ".done")  # resume reads every record's (JSON) meta
    again = run_onepass(run, frames, models, ArOptions(model_path=str(vila)))
    assert again["by_status"] == {"resumed": 7, "skipped": 1} and again["buckets"] == summary["buckets"]


def test_merge_small_buckets(data, models, tmp_path, caplog):
    """--merge-small-buckets: planned before encoding (bucket_plan.json), the merged sample is the original's rule
    at its new bucket, summary and log name what is left small, resume follows the plan in the file."""
    vae, _ = models
    frames = FrameSettings(frame_num=9, interval=2, buckets=((32, 48), (48, 32), (32, 32)), frame_buckets=(9, 5))
    out = tmp_path / "merged"
    summary = step1(data, out, frames, models, merge_small_buckets=True, min_bucket_records=2)
    records = by_index(out)
    square = records[2]  # its own bucket, 9x32x32, would hold it alone
    assert square["meta"]["bucket"]["size"] == [32, 48] and square["meta"]["bucket"]["merged_from"] == "9x32x32"
    assert_meta_describes(square)
    clip, _ = reference_clip(data / "square.mp4", 9, 2, 32, 48)
    assert torch.equal(square["latent_feature"], vae.encode(clip.permute(1, 0, 2, 3)[None])[0])
    for index, (h, w, n) in EXPECTED.items():
        if index != 2:
            assert (records[index]["meta"]["bucket"]["size"], records[index]["frame_num"]) == ([h, w], n), index
            assert "merged_from" not in records[index]["meta"]["bucket"]
    assert summary["buckets"] == {"5x32x48": 2, "9x32x48": 3, "9x48x32": 2} and "small_buckets" not in summary
    assert summary["merged_buckets"] == {"9x32x32": {"9x32x48": 1}}
    plan = json.loads((sidecar_of(out) / "bucket_plan.json").read_text())
    assert plan["moved"] == {"2": "9x32x32"} and plan["own"]["9x32x32"] == 1
    again = step1(data, out, frames, models, merge_small_buckets=True, min_bucket_records=2)
    assert again["by_status"].get("resumed") == 7 and "done" not in again["by_status"]
    plan["samples"]["2"] = "9x48x32"  # what another rank published first: every rank and resume follows the file
    (sidecar_of(out) / "bucket_plan.json").write_text(json.dumps(plan))
    again = step1(data, out, frames, models, merge_small_buckets=True, min_bucket_records=2)
    assert again["by_status"].get("done") == 1 and again["by_status"].get("resumed") == 6  # the square is redone
    assert by_index(out)[2]["meta"]["bucket"]["size"] == [48, 32]
    with caplog.at_level("WARNING", logger="revise_prep"):  # another minimum: another plan, only moved ones redone
        again = step1(data, out, frames, models, merge_small_buckets=True, min_bucket_records=3)
    # no bucket has 3 samples: none to join, the square pair goes back to its own bucket; all four are named
    assert again["buckets"] == again["small_buckets"] == {"5x32x48": 2, "9x32x32": 1, "9x32x48": 2, "9x48x32": 2}
    assert again["by_status"].get("done") == 1 and again["by_status"].get("resumed") == 6
    assert again["merged_buckets"] == {} and by_index(out)[2]["meta"]["bucket"]["size"] == [32, 32]
    assert "4 of 4 buckets hold fewer than 3 records (--min-bucket-records): 5x32x48 2, 9x32x32 1" in caplog.text


@pytest.mark.parametrize("frames", [FrameSettings(frame_num=9, interval=2, buckets=((32, 48), (48, 32)),
                                                  frame_buckets=(9, 5)),
                                    FrameSettings(frame_num=9, interval=2, height=32, width=48, frame_buckets=(9, 5))])
def test_decode_reasons_equal_validate(data, frames, tmp_path):
    """The first problem in pipeline order (source before target, count before orientation), as validate says."""
    from revise_prep.errors import SampleError
    from revise_prep.inputs import parse_entries
    from revise_prep.pipeline.stage import WorkItem
    from revise_prep.pipeline.step1 import Step1Stage
    from revise_prep.pipeline.validate import validate

    pairs = [("tiny", "missing"), ("port", "tiny"), ("short", "port"), ("port", "land"), ("land", "missing")]
    entries = [{"source_video_path": str(data / f"{a}.mp4"), "target_video_path": str(data / f"{b}.mp4"),
                "instruction": f"{TEXT} {i}"} for i, (a, b) in enumerate(pairs)]
    (tmp_path / "p.json").write_text(json.dumps(entries))
    expected = {c.index: c.reason for c in validate(tmp_path / "p.json", frames, workers=1).samples}
    stage = Step1Stage(frames)
    got = {}
    for sample in parse_entries(tmp_path / "p.json", ".")[0]:
        try:
            stage.decode(WorkItem(sample.index, "x", None, sample))
            got[sample.index] = None
        except SampleError as err:
            got[sample.index] = err.reason
    assert got == expected
    assert got[0] == "insufficient_frames" and got[4] == "missing_file"
    assert got[3] == (None if frames.buckets else "orientation_mismatch")
