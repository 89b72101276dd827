"""Step 2 end to end through the CLI: our step-1 records and the original's, exact final records, video errors
(fail by default, the original's black frames on request), resume, --only-used-frames, two ranks."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from revise_prep.models.vila import VilaARModel, black_frames
from revise_prep.records import iter_dataset, load_record
from revise_prep.records.layout import sidecar_of
from revise_prep.testing.tiny_vila import make_tiny_vila
from revise_prep.testing.videos import make_not_a_video, make_truncated, make_video

from .conftest import FRAMES, cli

# SPEC §Step 2, written out here (not imported) so a change of the schema module cannot hide a regression.
FINAL_KEYS = {"video_path_tgt", "prompt", "latent_features", "latent_feature_tgt", "t5_emb", "frame_num",
              "vlm_last_hidden_states"}
HIDDEN = 64  # tiny VILA LLM width
TOKENS_PER_IMAGE = 16  # 98 px / patch 14 = 7x7, padded to 8x8, 2x2 merge -> 4x4
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
            "[PAD]"]
SYSTEM = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and vision "
          "assistant. You are able to understand the visual content that the user provides, and assist the user "
          "with a variety of tasks using natural language.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n")
TAIL = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n[GEN_VID]<|end_of_text|>"


def count_tokens(text: str) -> int:
    """The test-built tokenizer has no merges: one token per special token, one per UTF-8 byte otherwise."""
    parts = re.split("(" + "|".join(re.escape(s) for s in SPECIALS) + ")", text)
    return sum(1 if p in SPECIALS else len(p.encode("utf-8")) for p in parts)


def expected_tokens(prompt: str, edit: bool) -> int:
    """N of vlm_last_hidden_states: [BOS] + chunks (each loses its own BOS), the -200 replaced by 16 tokens."""
    if edit:
        return 1 + count_tokens(SYSTEM) + count_tokens("\n<video>\n" + prompt + TAIL) + TOKENS_PER_IMAGE
    return 1 + count_tokens(SYSTEM + "Generate a video about:\n" + prompt + TAIL)


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def failures(out: Path) -> dict[str, dict]:
    lines = (out / "failures.jsonl").read_text().splitlines()
    return {Path(f["source"]).stem: f for f in map(json.loads, lines)}


def listed(out: Path) -> list[Path]:
    return [Path(p) for p in (out / "ar_features.txt").read_text().splitlines()]


def has_tensor(obj) -> bool:
    if isinstance(obj, torch.Tensor):
        return True
    if isinstance(obj, dict):
        return any(has_tensor(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(has_tensor(v) for v in obj)
    return False


@pytest.fixture(scope="module")
def vila_dir(tmp_path_factory) -> Path:
    return make_tiny_vila(tmp_path_factory.mktemp("vila") / "tiny_vila", seed=3)


@pytest.fixture(scope="module")
def vila(vila_dir) -> VilaARModel:
    return VilaARModel.load(vila_dir, on_video_error="fail")


@pytest.fixture(scope="module")
def step1(tmp_path_factory, dataset, wan_release) -> Path:
    out = tmp_path_factory.mktemp("s1") / "vae"
    cli("vae", "--ckpt-dir", str(wan_release), "--input", str(dataset / "pairs.json"), "--video-root", str(dataset),
        "--output-dir", str(out), "--num-workers", "0", "--vae-dtype", "float32", "--t5-dtype", "float32",
        "--text-len", "32", "--no-progress", *FRAMES, status=4)
    return out


def ar_args(data: Path, out: Path, vila_dir: Path, root: Path, *extra: str) -> list[str]:
    return ["ar", "--data-file", str(data), "--model-path", str(vila_dir), "--result-folder", str(out),
            "--video-root", str(root), "--device", "cpu", "--no-progress", *extra]


@pytest.fixture(scope="module")
def step2(tmp_path_factory, step1, dataset, vila_dir) -> Path:
    out = tmp_path_factory.mktemp("s2") / "ar"
    cli(*ar_args(sidecar_of(step1) / "vae_features.txt", out, vila_dir, dataset, "--num-workers", "2"))
    return out


# ---------------------------------------------------------------------------------------------- (a) our step 1
def test_final_records_exact(step1, step2, dataset, vila):
    assert summary(step2)["by_status"] == {"done": 4}
    inputs = (sidecar_of(step1) / "vae_features.txt").read_text().splitlines()
    outputs = listed(step2)
    assert [p.name for p in outputs] == [Path(p).name for p in inputs]  # same names, same order
    kinds = []
    for src_path, out_path in zip(inputs, outputs):
        src, rec = load_record(src_path), load_record(out_path)
        edit = "latent_feature_tgt" in src
        kinds.append(edit)
        assert set(rec) - {"meta"} == (FINAL_KEYS if edit else FINAL_KEYS - {"latent_feature_tgt"})
        assert not has_tensor(rec["meta"]) and rec["meta"]["step"] == "ar"
        assert rec["video_path_tgt"] == src["video_path"] == str(dataset / src["meta"]["videos"]["source"]["path"])
        assert rec["prompt"] == src["prompt"] and rec["frame_num"] == src["frame_num"] == 5
        assert isinstance(rec["t5_emb"], list) and len(rec["t5_emb"]) == 1
        assert torch.equal(rec["t5_emb"][0], src["text_emb"][0])
        assert torch.equal(rec["latent_features"], src["latent_feature"])
        if edit:
            assert torch.equal(rec["latent_feature_tgt"], src["latent_feature_tgt"])
        vlm = rec["vlm_last_hidden_states"]
        assert vlm.dtype == torch.float16 and tuple(vlm.shape) == (1, expected_tokens(rec["prompt"], edit), HIDDEN)
        direct = (vila.encode("vid_edit", src["prompt"], dataset / src["video_path"]) if edit
                  else vila.encode("vid_gen", src["prompt"]))
        assert torch.equal(vlm, direct), out_path.name
    assert kinds == [True, True, True, False]  # pairs 0, 1, 5 and the caption sample 9


def test_training_reader_unwraps_text_emb(step1, step2):
    samples = list(iter_dataset(step2 / "ar_features.txt"))
    assert len(samples) == 4
    for sample, src_path in zip(samples, (sidecar_of(step1) / "vae_features.txt").read_text().splitlines()):
        assert "t5_emb" not in sample
        assert isinstance(sample["text_emb"], torch.Tensor) and sample["text_emb"].ndim == 2
        assert torch.equal(sample["text_emb"], load_record(src_path)["text_emb"][0])


# ---------------------------------------------------------------------------------------------- (d) resume
def test_rerun_resumes_everything(step1, step2, dataset, vila_dir):
    mtimes = {p: os.stat(p).st_mtime_ns for p in listed(step2)}
    cli(*ar_args(sidecar_of(step1) / "vae_features.txt", step2, vila_dir, dataset, "--num-workers", "0"))
    assert summary(step2)["by_status"] == {"resumed": 4}
    assert {p: os.stat(p).st_mtime_ns for p in listed(step2)} == mtimes


# ---------------------------------------------------------------------------------------------- (e) used frames
def test_only_used_frames_identical(step1, step2, dataset, vila_dir, vila, tmp_path):
    """``--only-used-frames`` (in-process: ``run_step2`` is what the CLI calls) gives the same bits on CPU."""
    from revise_prep.pipeline.step2 import ArSettings, run_step2

    out = tmp_path / "fast"
    run_step2(ArSettings(data_file=str(sidecar_of(step1) / "vae_features.txt"), result_folder=str(out),
                         model_path=str(vila_dir), video_root=str(dataset), device="cpu", all_frames=False,
                         num_workers=1, progress=False), model=vila)
    assert summary(out)["by_status"] == {"done": 4}
    for a, b in zip(listed(step2), listed(out)):
        assert a.name == b.name
        assert torch.equal(load_record(a)["vlm_last_hidden_states"], load_record(b)["vlm_last_hidden_states"])
    assert load_record(listed(out)[0])["meta"]["settings"]["all_frames"] is False


# ---------------------------------------------------------------------------------------------- (f) two ranks
def test_two_ranks_merge_to_same_list(step1, step2, dataset, vila_dir, tmp_path):
    out = tmp_path / "ranks"
    args = ar_args(sidecar_of(step1) / "vae_features.txt", out, vila_dir, dataset, "--num-workers", "0")
    procs = [subprocess.Popen([sys.executable, "-m", "revise_prep", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              env={**os.environ, "RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r)})
             for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-3000:]
    assert [p.name for p in listed(out)] == [p.name for p in listed(step2)]
    assert summary(out)["world_size"] == 2 and summary(out)["by_status"] == {"done": 4}
    for a, b in zip(listed(step2), listed(out)):
        assert torch.equal(load_record(a)["vlm_last_hidden_states"], load_record(b)["vlm_last_hidden_states"])


# ---------------------------------------------------------------------------------------------- (b) + (c)
def _original_record(video_path: str, prompt: str, *, edit: bool = True, seed: int = 0) -> dict:
    """The original step 1's six keys (no meta), as its ``pickle.dump`` writes them."""
    g = torch.Generator().manual_seed(seed)
    rec = {"latent_feature": torch.randn(16, 2, 4, 6, generator=g), "prompt": prompt,
           "text_emb": [torch.randn(7, 32, generator=g)], "video_path": video_path, "frame_num": 5}
    if edit:
        rec["latent_feature_tgt"] = torch.randn(16, 2, 4, 6, generator=g)
    return rec


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """Original-format records: a good pair, a caption whose video does not exist (never opened), and sources
    that cannot be decoded: a faststart file cut in half (its first frames decode), a text file, a missing file."""
    root = tmp_path_factory.mktemp("orig")
    good = make_video(root / "good.mp4", frames=20, width=64, height=40, seed=5)
    full = make_video(root / "full.mp4", frames=40, width=64, height=40, seed=6, faststart=True)
    make_truncated(full, root / "cut.mp4", keep_fraction=0.5)
    make_not_a_video(root / "garbage.mp4")
    records = {
        "good": _original_record(str(good), "Turn the shapes into glowing lanterns.", seed=1),
        "caption": _original_record(str(root / "never_there.mp4"), "Shapes drift over a gradient.", edit=False,
                                    seed=2),
        "cut": _original_record("cut.mp4", "What if it started to snow?", seed=3),  # relative: --video-root
        "garbage": _original_record(str(root / "garbage.mp4"), "Make it look like an old film.", seed=4),
        "missing": _original_record(str(root / "gone.mp4"), "Add a red balloon to the sky.", seed=5),
    }
    folder = root / "step1"
    folder.mkdir()
    for name, rec in records.items():
        with open(folder / f"{name}.pkl", "wb") as fh:
            pickle.dump(rec, fh)  # plain pickle, default protocol, as the original
    return root


def test_original_records_default_fails_bad_videos(original, vila_dir, vila, tmp_path):
    out = tmp_path / "strict"
    cli(*ar_args(original / "step1", out, vila_dir, original, "--num-workers", "2"), status=4)
    assert sorted(p.stem for p in listed(out)) == ["caption", "good"]
    fails = failures(out)
    assert {k: v["reason"] for k, v in fails.items()} == {"cut": "decode_error", "garbage": "cannot_open",
                                                          "missing": "missing_file"}
    assert all(f["status"] == "failed" and f["message"] for f in fails.values())
    assert "cut.pkl" in fails["cut"]["message"] and "truncated" in fails["cut"]["message"]
    for path in listed(out):
        src = pickle.loads((original / "step1" / path.name).read_bytes())
        rec = load_record(path)
        edit = path.stem == "good"
        assert set(rec) - {"meta"} == (FINAL_KEYS if edit else FINAL_KEYS - {"latent_feature_tgt"})
        assert rec["meta"]["vae_settings"] is None and rec["meta"]["ar"]["task"] == ("vid_edit" if edit else "vid_gen")
        assert torch.equal(rec["latent_features"], src["latent_feature"]) and rec["t5_emb"][0].shape == (7, 32)
        expected = vila.encode("vid_edit", src["prompt"], src["video_path"]) if edit else \
            vila.encode("vid_gen", src["prompt"])
        assert rec["vlm_last_hidden_states"].shape[1] == expected_tokens(src["prompt"], edit)
        assert torch.equal(rec["vlm_last_hidden_states"], expected)


def test_original_records_black_mode(original, vila_dir, vila, tmp_path):
    out = tmp_path / "black"
    cli(*ar_args(original / "step1", out, vila_dir, original, "--num-workers", "0", "--on-video-error", "black"))
    assert summary(out)["by_status"] == {"done": 5}
    black = {}
    for path in listed(out):
        rec = load_record(path)
        assert rec["meta"]["settings"]["on_video_error"] == "black"
        black[path.stem] = rec["vlm_last_hidden_states"]
    black_pixels = vila.pixel_values(black_frames(8))  # the original's fallback: 8 black 448x448 images
    for name in ("cut", "garbage", "missing"):
        prompt = pickle.loads((original / "step1" / f"{name}.pkl").read_bytes())["prompt"]
        assert torch.equal(black[name], vila.encode_pixels("vid_edit", prompt, black_pixels)), name
    good = pickle.loads((original / "step1" / "good.pkl").read_bytes())
    assert torch.equal(black["good"], vila.encode("vid_edit", good["prompt"], good["video_path"]))
    assert not torch.equal(black["good"], vila.encode_pixels("vid_edit", good["prompt"], black_pixels))


def test_fixture_cut_file_black_matches_original_p13(reference, tmp_path):
    """The golden p13 case: the original turns the cut faststart file into 8 black frames (its first 23 decode).
    Run in-process (``run_step2``, the function behind the CLI) with the fixture's own checkpoint."""
    from safetensors.torch import load_file

    from revise_prep.pipeline.step2 import ArSettings, run_step2
    from revise_prep.testing.exact import assert_within

    fixture_vila = reference / "vila"
    case = next(c for c in json.loads((fixture_vila / "cases.json").read_text())["cases"] if c["id"] == "p13")
    expected = load_file(str(fixture_vila / case["tensors_file"]))["vlm_last_hidden_states"]
    (tmp_path / "s1").mkdir()
    with open(tmp_path / "s1" / "p13.pkl", "wb") as fh:
        pickle.dump(_original_record(str(fixture_vila / case["media"]), case["prompt"]), fh)
    model = VilaARModel.load(fixture_vila / "tiny_vila")
    for mode in ("black", "fail"):
        settings = ArSettings(data_file=str(tmp_path / "s1"), result_folder=str(tmp_path / mode),
                              model_path=str(fixture_vila / "tiny_vila"), device="cpu", on_video_error=mode,
                              num_workers=0, progress=False)
        run_step2(settings, model=model)
    assert_within("vila.hidden_states", load_record(tmp_path / "black" / "p13.pkl")["vlm_last_hidden_states"], expected,
                  case="p13 through run_step2")
    assert not (tmp_path / "fail" / "p13.pkl").exists()
    assert failures(tmp_path / "fail")["p13"]["reason"] == "decode_error"
