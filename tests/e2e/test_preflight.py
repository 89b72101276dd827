"""Pre-flight: every mistake found before a model loads is one line, with its exit status and no traceback.

The checkpoints here are booby-trapped: they pass every check that reads configs and file headers, but loading
them fails loudly (the VAE file is a real torch checkpoint of the wrong tensors; the VILA LLM names a model type
transformers does not know). So a test that sees its pre-flight line and not the trap's proves that no model was
constructed; `test_the_traps_fire` proves the traps work. No test touches the network (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from revise_prep.cli import exit_codes as st
from revise_prep.cli import main
from revise_prep.records.layout import sidecar_of
from revise_prep.testing.tiny_vila import make_tiny_vila
from revise_prep.testing.videos import make_video

from .conftest import as_another_user, cli

VAE_TRAP = "not an original Wan VAE state dict"
VILA_TRAP = "cannot load the AR model"
TINY = ["--frame-num", "5", "--sampling-rate", "2", "--target-size", "32,48", "--text-len", "16", "--device", "cpu",
        "--num-workers", "0", "--no-progress"]
TEXT = "Turn the moving shapes into glowing lanterns at dusk"
HOLD_LOCK = ("import sys, time\nfrom revise_prep.pipeline.locks import ShareLock\n"
             "with ShareLock(sys.argv[1], 0, 1):\n    print('held', flush=True)\n    time.sleep(300)\n")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, wan_release) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("preflight")
    trap = shutil.copytree(wan_release, root / "ck" / "Wan2.1-trap")
    torch.save({"trap.weight": torch.zeros(2)}, trap / "Wan2.1_VAE.pth")  # a valid file of the wrong tensors
    vila = make_tiny_vila(root / "ck" / "VILA-tiny")
    vila_trap = shutil.copytree(vila, root / "ck" / "VILA-trap")
    cfg = json.loads((vila_trap / "llm" / "config.json").read_text())
    (vila_trap / "llm" / "config.json").write_text(json.dumps({**cfg, "model_type": "no-such-model-type"}))
    for name in ("a", "b"):
        for role in ("src", "tgt"):
            make_video(root / "data" / "videos" / f"{name}_{role}.mp4", frames=8, width=48, height=32)
    pairs = [{"source_video_path": f"videos/{n}_src.mp4", "target_video_path": f"videos/{n}_tgt.mp4",
              "instruction": f"{TEXT} ({n})"} for n in ("a", "b")]
    (root / "data" / "pairs.json").write_text(json.dumps(pairs))
    step1 = root / "step1"  # one step-1 record naming a relative video, for `ar`
    step1.mkdir()
    from revise_prep.records.atomic import atomic_write_bytes
    from revise_prep.records.safe_pickle import dumps

    atomic_write_bytes(step1 / "a_tgt.pkl", dumps({"latent_feature": torch.zeros(16, 2, 4, 6),
                                                   "latent_feature_tgt": torch.zeros(16, 2, 4, 6), "prompt": TEXT,
                                                   "text_emb": [torch.zeros(3, 8)], "video_path": "videos/a_src.mp4",
                                                   "frame_num": 5}))
    return {"root": root, "trap": trap, "vila": vila, "vila_trap": vila_trap, "data": root / "data",
            "step1": step1, "wan": wan_release}


def _vae(setup, out: str, *extra: str) -> list[str]:
    return ["vae", "--input", str(setup["data"] / "pairs.json"), "--video-root", str(setup["data"]), "--ckpt-dir",
            str(setup["trap"]), "--output-dir", str(setup["root"] / out), *TINY, *extra]


def _one_line(caplog, argv: list[str], status: int, *needles: str) -> str:
    """Runs ``argv`` in this process: exit ``status``, exactly one error line holding every needle, no traceback,
    and neither trap sprung (no model was constructed)."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(argv) == status
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert "\n" not in message and not errors[0].exc_info, message
    for needle in needles:
        assert needle in message, message
    text = caplog.text
    assert VAE_TRAP not in text and VILA_TRAP not in text and "loading VAE" not in text and "loading VILA" not in text
    return message


def test_the_traps_fire(setup, caplog):
    """Past the pre-flight, the trapped checkpoints fail loudly: so the other tests' silence means no model loaded."""
    caplog.clear()
    assert main(_vae(setup, "trap-vae")) == st.USAGE
    assert VAE_TRAP in caplog.text
    caplog.clear()
    assert main(["ar", "--data-file", str(setup["step1"]), "--model-path", str(setup["vila_trap"]), "--video-root",
                 str(setup["data"]), "--result-folder", str(setup["root"] / "trap-ar"), "--device", "cpu",
                 "--num-workers", "0", "--no-progress"]) == st.USAGE
    assert VILA_TRAP in caplog.text and "no-such-model-type" in caplog.text


def test_input_and_videos(setup, caplog):
    data = setup["data"]
    (data / "empty.json").write_text("[]")
    _one_line(caplog, [*_vae(setup, "empty")[:1], "--input", str(data / "empty.json"), *_vae(setup, "empty")[3:]],
              st.NOTHING_PRODUCED, "the input has no samples")
    message = _one_line(caplog, [*_vae(setup, "root")[:4], str(data) + "s", *_vae(setup, "root")[5:]], st.USAGE,
                        "no video of the input exists", f"{data}s{os.sep}videos{os.sep}a_src.mp4",
                        f"--video-root {data}s")
    assert "(4 (all) checked)" in message  # every distinct video was looked at
    cwd = os.getcwd()
    try:  # no --video-root: relative to the folder the command runs in
        os.chdir(setup["root"])
        _one_line(caplog, [a for a in _vae(setup, "cwd") if a not in ("--video-root", str(data))], st.USAGE,
                  f"resolves to {setup['root'] / 'videos' / 'a_src.mp4'}", f"--video-root {setup['root']}")
    finally:
        os.chdir(cwd)
    # `ar`: the videos its step-1 records name
    _one_line(caplog, ["ar", "--data-file", str(setup["step1"]), "--model-path", str(setup["vila_trap"]),
                       "--video-root", str(setup["root"]), "--result-folder", str(setup["root"] / "ar"), "--device",
                       "cpu"], st.USAGE, "a_tgt.pkl: source video", str(setup["root"] / "videos" / "a_src.mp4"))
    (setup["root"] / "step1-empty").mkdir()
    _one_line(caplog, ["ar", "--data-file", str(setup["root"] / "step1-empty"), "--model-path", str(setup["vila"]),
                       "--result-folder", str(setup["root"] / "ar2")], st.NOTHING_PRODUCED, "no step-1 records")


def test_some_videos_missing_is_a_warning_and_the_run_goes_on(setup, caplog):
    data = setup["data"]
    pairs = json.loads((data / "pairs.json").read_text())
    pairs.append({"source_video_path": "videos/gone.mp4", "target_video_path": "videos/a_tgt.mp4",
                  "instruction": TEXT + " (gone)"})
    (data / "some.json").write_text(json.dumps(pairs))
    caplog.clear()
    assert main(["vae", "--input", str(data / "some.json"), *_vae(setup, "some")[3:]]) == st.USAGE
    warning = next(r.getMessage() for r in caplog.records if "do not exist" in r.getMessage())
    assert warning.startswith("1 of the 5 (all) videos checked") and str(data / "videos" / "gone.mp4") in warning
    assert VAE_TRAP in caplog.text  # it went on to load the models


def test_checkpoint_parts(setup, caplog, tmp_path):
    wan, root = setup["wan"], setup["root"]
    no_t5 = shutil.copytree(wan, tmp_path / "no-t5")
    (no_t5 / "models_t5_umt5-xxl-enc-bf16.pth").unlink()
    (no_t5 / "Wan2.1_VAE.pth").write_bytes((setup["trap"] / "Wan2.1_VAE.pth").read_bytes())
    args = _vae(setup, "ck")
    at = args.index("--ckpt-dir") + 1
    _one_line(caplog, [*args[:at], str(no_t5), *args[at + 1:]], st.USAGE, f"--ckpt-dir {no_t5}",
              "no T5 encoder found", "--t5-path gives it")
    no_tok = shutil.copytree(no_t5, tmp_path / "no-tok")
    shutil.copy(wan / "models_t5_umt5-xxl-enc-bf16.pth", no_tok)
    shutil.rmtree(no_tok / "google")
    _one_line(caplog, [*args[:at], str(no_tok), *args[at + 1:]], st.USAGE, "no tokenizer",
              "--tokenizer-path gives it")
    _one_line(caplog, [*args[:at], str(setup["vila"]), *args[at + 1:]], st.USAGE, "LlavaLlamaModel",
              "not a Wan VAE", "--model-path")
    bad = shutil.copytree(no_tok, tmp_path / "bad-vae")
    (bad / "Wan2.1_VAE.pth").write_bytes(b"<html><body>rate limited</body></html>\n" * 20)  # a failed download
    shutil.copytree(wan / "google", bad / "google")
    _one_line(caplog, [*args[:at], str(bad), *args[at + 1:]], st.USAGE, str(bad / "Wan2.1_VAE.pth"),
              "not a torch checkpoint", "<html>")
    truncated = shutil.copytree(bad, tmp_path / "truncated")
    data = (wan / "Wan2.1_VAE.pth").read_bytes()
    (truncated / "Wan2.1_VAE.pth").write_bytes(data[: len(data) // 2])
    _one_line(caplog, [*args[:at], str(truncated), *args[at + 1:]], st.USAGE, "truncated or damaged")
    # `run`: the VILA checkpoint is checked before the VAE and umT5 load
    run = ["run", *args[1:args.index("--output-dir")], "--output-dir", str(root / "run"), *TINY]
    _one_line(caplog, [*run, "--model-path", str(setup["vila"]) + "x"], st.USAGE,
              f"--model-path {setup['vila']}x: no such local folder: {setup['vila']}x",
              f"did you mean {setup['vila']}?")
    no_proj = shutil.copytree(setup["vila"], tmp_path / "no-proj")
    (no_proj / "mm_projector" / "model.safetensors").unlink()
    _one_line(caplog, [*run, "--model-path", str(no_proj)], st.USAGE, "mm_projector", "no weights file")


def test_flags(setup, caplog, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(_vae(setup, "nw", "--num-workers", "-1"))
    assert exit_.value.code == st.USAGE and "--num-workers: must be >= 0" in capsys.readouterr().err
    caplog.clear()  # accepted as the original accepts it, with one warning saying what the latents will be
    assert main(_vae(setup, "ts", "--target-size", "63,111")) == st.USAGE  # the trap: it went on to load
    warnings = [r.getMessage() for r in caplog.records if "--target-size" in r.getMessage()]
    assert len(warnings) == 1 and "latents will be 7x13" in warnings[0] and "2x2" in warnings[0], warnings
    assert VAE_TRAP in caplog.text
    (setup["root"] / "empty.json").write_text("[]")
    _one_line(caplog, ["validate", str(setup["root"] / "empty.json")], st.NOTHING_PRODUCED, "no samples")
    # validate checks the checkpoints it is given as the steps do, without loading them
    validate = ["validate", str(setup["data"] / "pairs.json"), "--video-root", str(setup["data"]), "--report",
                str(setup["root"] / "v.jsonl"), "--frame-num", "5"]
    _one_line(caplog, [*validate, "--ckpt-dir", str(setup["vila"])], st.USAGE, "not a Wan VAE")
    _one_line(caplog, [*validate, "--model-path", str(setup["trap"])], st.USAGE, "--model-path", "not a VILA")
    caplog.clear()
    assert main([*validate, "--ckpt-dir", str(setup["trap"]), "--model-path", str(setup["vila_trap"])]) == 0


def _stderr_is_one_line(proc: subprocess.CompletedProcess, status: int, *needles: str) -> str:
    assert proc.returncode == status, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert VAE_TRAP not in proc.stderr and "loading VAE" not in proc.stderr, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_misspelled_local_path_is_not_taken_for_a_hub_download(setup):
    """A relative path with a typo looks like a hub id ('checkpoints/Wan2.1-tni'): one line, no download retries."""
    start = time.monotonic()
    args = _vae(setup, "hub")
    args[args.index("--ckpt-dir") + 1] = "ck/Wan2.1-tarp"
    proc = cli(*args, env={"HF_HUB_OFFLINE": "1"}, cwd=setup["root"], check=False)
    line = _stderr_is_one_line(proc, st.USAGE, f"no such local folder: {setup['root'] / 'ck' / 'Wan2.1-tarp'}",
                               f"did you mean {setup['trap']}", "HF_HUB_OFFLINE is set (the hub was not asked)")
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert time.monotonic() - start < 60, line  # the 5 retries with back-off it replaces took ~50 s


def test_locked_folder_is_refused_before_the_models(setup):
    """A live run holding the folder (a process of its own) stops a second one at once."""
    out = setup["root"] / "locked"
    sidecar_of(out).mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(sidecar_of(out))], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = cli(*_vae(setup, "locked"), check=False)
        _stderr_is_one_line(proc, st.CANNOT_WRITE, "already being written", f"pid {holder.pid}", "revise-prep status")
    finally:
        holder.kill()
        holder.wait()


def test_read_only_folder_is_refused_before_the_models(setup):
    prefix = as_another_user() or []  # root ignores permissions: the run goes as user 65534 (or skips, saying why)
    base = Path(tempfile.mkdtemp(prefix="revise-prep-ro-"))
    try:
        base.chmod(0o777)
        shutil.copytree(setup["data"], base / "data")
        shutil.copytree(setup["trap"], base / "trap")
        for p in [base, *base.rglob("*")]:
            p.chmod(0o777 if p.is_dir() else 0o644)
        out = base / "out"
        out.mkdir()
        out.chmod(0o555)
        args = _vae(setup, "x")
        args[args.index("--input") + 1] = str(base / "data" / "pairs.json")
        args[args.index("--video-root") + 1] = str(base / "data")
        args[args.index("--ckpt-dir") + 1] = str(base / "trap")
        args[args.index("--output-dir") + 1] = str(out)
        proc = subprocess.run([*prefix, sys.executable, "-m", "revise_prep", *args], capture_output=True, text=True,
                              timeout=300, cwd=base)
        _stderr_is_one_line(proc, st.CANNOT_WRITE, f"cannot write in {out}", "Permission denied")
        assert "samples (100.0%)" not in proc.stderr
    finally:
        for p in base.rglob("*"):
            p.chmod(p.stat().st_mode | 0o200)
        shutil.rmtree(base, ignore_errors=True)
