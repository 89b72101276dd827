"""Video paths in records open from any working folder: `vae`, `ar` and `run` name the file they read
(absolute, or relative to --video-root on request), keep the input's spelling in meta, and resume keeps records
made before this (same frames, the input's spelling as their video path)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from revise_prep.records import load_record
from revise_prep.records.atomic import atomic_write_bytes
from revise_prep.records.formats import serialize
from revise_prep.records.layout import sidecar_of
from revise_prep.settings import FrameSettings, ModelSettings, RunSettings
from revise_prep.testing.tiny_vila import make_tiny_vila
from revise_prep.testing.videos import make_video

FRAMES = FrameSettings(frame_num=5, interval=2, height=32, width=48)
TEXT = "Turn the moving shapes into paper lanterns, please."


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """<root>/data/clips/*.mp4 and <root>/data/pairs.json: one pair spelled relative to the video root, one
    spelled absolute; <root>/elsewhere is another working folder."""
    root = tmp_path_factory.mktemp("paths")
    clips = root / "data" / "clips"
    clips.mkdir(parents=True)
    for i, name in enumerate(("a_src", "a_tgt", "b_src", "b_tgt")):
        make_video(clips / f"{name}.mp4", frames=12, width=64, height=40, seed=40 + i)
    pairs = [{"source_video_path": "clips/a_src.mp4", "target_video_path": "clips/a_tgt.mp4", "instruction": TEXT},
             {"source_video_path": str(clips / "b_src.mp4"), "target_video_path": str(clips / "b_tgt.mp4"),
              "instruction": TEXT + " 2"}]
    (root / "data" / "pairs.json").write_text(json.dumps(pairs))
    (root / "elsewhere").mkdir()
    return root


@pytest.fixture(scope="module")
def models(wan_release):
    from revise_prep.models.umt5 import UMT5TextEncoder
    from revise_prep.models.wan_vae import WanVAE

    return WanVAE.load(wan_release, dtype="float32"), UMT5TextEncoder.load(wan_release, dtype="float32", text_len=32)


@pytest.fixture(scope="module")
def vila(tmp_path_factory):
    from revise_prep.models.vila import VilaARModel

    folder = make_tiny_vila(tmp_path_factory.mktemp("vila") / "tiny_vila", seed=3)
    return folder, VilaARModel.load(folder, on_video_error="fail")


def step1(out: Path, models, **run) -> dict:
    from revise_prep.pipeline.step1 import run_step1

    run = RunSettings(input="data/pairs.json", output_dir=str(out), video_root="data", num_workers=0, progress=False,
                      **run)
    return run_step1(run, FRAMES, ModelSettings(), loaded=models)


def step2(data_file: Path, out: Path, vila, **settings) -> dict:
    from revise_prep.pipeline.step2 import ArSettings, run_step2

    return run_step2(ArSettings(data_file=str(data_file), result_folder=str(out), model_path=str(vila[0]),
                                num_workers=0, progress=False, **settings), model=vila[1])


def records(out: Path, list_file: Path | None = None) -> list[dict]:
    return [load_record(p) for p in (list_file or sidecar_of(out) / "vae_features.txt").read_text().splitlines()]


@pytest.fixture(scope="module")
def made(root, models):
    """`vae` run from <root> with the relative video root `data` (both relative, as in the issue)."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert step1(root / "out" / "vae", models)["by_status"] == {"done": 2}
    finally:
        os.chdir(cwd)
    return root / "out" / "vae"


def test_step1_names_the_files_it_read(root, made, monkeypatch):
    monkeypatch.chdir(root / "elsewhere")  # a trainer's (or ReViSE's step 2's) own working folder
    clips = root / "data" / "clips"
    for rec, (src, tgt, spelled) in zip(records(made), [("a_src", "a_tgt", "clips/a_src.mp4"),
                                                         ("b_src", "b_tgt", str(clips / "b_src.mp4"))]):
        assert rec["video_path"] == str(clips / f"{src}.mp4") and Path(rec["video_path"]).is_file()
        videos = rec["meta"]["videos"]
        assert videos["source"]["path"] == spelled  # the input's own spelling
        assert videos["source"]["file"] == rec["video_path"] and videos["target"]["file"] == str(clips / f"{tgt}.mp4")


def test_step2_and_run_from_another_folder(root, made, models, vila, monkeypatch):
    """ar from another working folder, with no --video-root, reads the step-1 records' videos; run (one pass)
    names the same files in its final records and in the step-1 records it keeps."""
    from revise_prep.pipeline.onepass import ArOptions, run_onepass

    monkeypatch.chdir(root / "elsewhere")
    assert step2(made, root / "out" / "ar", vila)["by_status"] == {"done": 2}
    final = records(root / "out" / "ar", root / "out" / "ar" / "ar_features.txt")
    for rec, src in zip(final, records(made)):
        assert rec["video_path_tgt"] == src["video_path"] and rec["meta"]["ar"]["step1_video_path"] == src["video_path"]
        assert torch.equal(rec["vlm_last_hidden_states"], vila[1].encode("vid_edit", rec["prompt"], src["video_path"]))
    monkeypatch.chdir(root)
    run = RunSettings(input="data/pairs.json", output_dir="out/run", video_root="data", num_workers=0, progress=False)
    summary = run_onepass(run, FRAMES, ModelSettings(), ArOptions(model_path=str(vila[0])), keep_intermediate=True,
                          loaded=(*models, vila[1]))
    assert summary["by_status"] == {"done": 2}
    one_pass = records(root / "out" / "run", root / "out" / "run" / "train_list.txt")
    kept = records(root / "out" / "run" / "vae_features")
    assert [r["video_path_tgt"] for r in one_pass] == [r["video_path_tgt"] for r in final] == \
        [r["video_path"] for r in kept]


def test_relative_video_paths_on_request(root, models, vila, tmp_path, monkeypatch):
    """--relative-video-paths: relative to --video-root (the absolute spelling too), in both steps."""
    monkeypatch.chdir(root)
    assert step1(tmp_path / "vae", models, relative_video_paths=True)["by_status"] == {"done": 2}
    assert [r["video_path"] for r in records(tmp_path / "vae")] == ["clips/a_src.mp4", "clips/b_src.mp4"]
    monkeypatch.chdir(root / "elsewhere")
    assert step2(tmp_path / "vae", tmp_path / "ar", vila, video_root=str(root / "data"),
                 relative_video_paths=True)["by_status"] == {"done": 2}
    final = records(tmp_path / "ar", tmp_path / "ar" / "ar_features.txt")
    assert [r["video_path_tgt"] for r in final] == ["clips/a_src.mp4", "clips/b_src.mp4"]
    # step 2 by default names the file it read, whatever the step-1 record says (here: a relative path)
    assert step2(tmp_path / "vae", tmp_path / "ar_abs", vila, video_root=str(root / "data"))["by_status"] == \
        {"done": 2}
    final = records(tmp_path / "ar_abs", tmp_path / "ar_abs" / "ar_features.txt")
    clips = root / "data" / "clips"
    assert [r["video_path_tgt"] for r in final] == [str(clips / f"{n}.mp4") for n in ("a_src", "b_src")]
    assert [r["meta"]["ar"]["step1_video_path"] for r in final] == ["clips/a_src.mp4", "clips/b_src.mp4"]


def test_resume_keeps_records_made_before(root, made, models, tmp_path, monkeypatch):
    """A record written by an earlier version (video path as the input spelled it, no meta "file") has the
    same frames: resume counts it as done and leaves it alone."""
    out = tmp_path / "vae"
    shutil.copytree(made, out)
    shutil.copytree(sidecar_of(made), sidecar_of(out))
    shutil.rmtree(sidecar_of(out) / ".done")  # every record is read and checked
    first = sorted(out.glob("*.pkl"))[0]
    old = load_record(first)
    old["video_path"] = old["meta"]["videos"]["source"]["path"]
    for video in old["meta"]["videos"].values():
        del video["file"]
    atomic_write_bytes(first, serialize(old, first))
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pkl")}
    monkeypatch.chdir(root)
    assert step1(out, models)["by_status"] == {"resumed": 2}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.pkl")} == before
    assert load_record(first)["video_path"] == old["video_path"]
