"""Exit statuses a scheduler can trust, and one line (no traceback) for each common mistake."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from revise_prep.cli import main
from revise_prep.cli import exit_codes as st
from revise_prep.records.atomic import atomic_write_bytes
from revise_prep.records.safe_pickle import dumps


@pytest.fixture
def pairs(tmp_path) -> Path:
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"source_video_path": "gone.mp4", "target_video_path": "gone_tgt.mp4",
                                 "instruction": "a long enough instruction for the filter"}]))
    return path


def _errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def _one_line_usage_error(caplog, argv: list[str], needle: str) -> None:
    caplog.clear()
    assert main(argv) == st.USAGE
    [error] = _errors(caplog)
    assert needle in error.getMessage() and "\n" not in error.getMessage() and not error.exc_info, \
        error.getMessage()


def test_common_mistakes_are_one_line_and_status_2(tmp_path, pairs, wan_release, caplog):
    base = ["vae", "--input", str(pairs), "--output-dir", str(tmp_path / "out"), "--ckpt-dir", str(wan_release)]
    _one_line_usage_error(caplog, [*base, "--frame-num", "16"], "--frame-num: frame_num must be 4n+1")
    _one_line_usage_error(caplog, [*base, "--sampling-rate", "0"], "--sampling-rate")
    _one_line_usage_error(caplog, [*base, "--target-size", "0,0"], "--target-size")
    _one_line_usage_error(caplog, [*base[:-1], str(tmp_path / "no-such-release")], "no-such-release")
    (tmp_path / "a-file").write_text("")
    _one_line_usage_error(caplog, [*base[:4], str(tmp_path / "a-file"), *base[5:]], "is not a folder")
    if not torch.cuda.is_available():
        _one_line_usage_error(caplog, [*base, "--device", "cuda"], "CUDA is not available")
    _one_line_usage_error(caplog, ["inspect", str(tmp_path / "missing.pkl")], "no such file")
    _one_line_usage_error(caplog, ["ar", "--data-file", str(pairs), "--model-path", str(tmp_path / "vila"),
                                   "--result-folder", str(tmp_path / "ar")], "JSON input list")
    (tmp_path / "step1").mkdir()
    atomic_write_bytes(tmp_path / "step1" / "r.pkl", dumps({"prompt": "p", "latent_feature": torch.zeros(2, 3)}))
    _one_line_usage_error(caplog, ["ar", "--data-file", str(tmp_path / "step1"), "--model-path",
                                   str(tmp_path / "no-vila"), "--result-folder", str(tmp_path / "ar")], "no-vila")
    caplog.clear()
    assert main([*base, "--frame-num", "16", "--debug"]) == st.USAGE  # --debug anywhere: the traceback too
    assert _errors(caplog)[0].exc_info


def test_bad_flag_value_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["vae", "--input", "x.json", "--output-dir", str(tmp_path), "--target-size", "abc"])
    assert exit_.value.code == st.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--target-size" in err and "usage:" not in err


def test_nothing_produced(tmp_path, pairs, wan_release, caplog):
    from revise_prep.testing.videos import make_video

    common = ["--ckpt-dir", str(wan_release), "--text-len", "16", "--num-workers", "0", "--frame-num", "5",
              "--target-size", "32,48", "--no-progress"]
    (tmp_path / "empty.json").write_text("[]")
    assert main(["vae", "--input", str(tmp_path / "empty.json"), "--output-dir", str(tmp_path / "e"), *common]) \
        == st.NOTHING_PRODUCED
    assert "the input has no samples" in _errors(caplog)[-1].getMessage()
    make_video(tmp_path / "short.mp4", frames=3, width=48, height=32)  # too short for 5 frames: skipped
    pairs.write_text(json.dumps([{"source_video_path": "short.mp4", "target_video_path": "short.mp4",
                                  "instruction": "a long enough instruction for the filter"}]))
    assert main(["vae", "--input", str(pairs), "--video-root", str(tmp_path), "--output-dir", str(tmp_path / "f"),
                 *common]) == st.NOTHING_PRODUCED


def test_broken_pipe_is_quiet(tmp_path):
    atomic_write_bytes(tmp_path / "r.pkl", dumps({"prompt": "p", "latent_feature": torch.zeros(2, 3)}))
    proc = subprocess.Popen([sys.executable, "-m", "revise_prep", "inspect", "--json", str(tmp_path / "r.pkl")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    proc.stdout.close()  # `| head` that has already gone
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == st.BROKEN_PIPE and b"Traceback" not in err, err.decode()


def test_ar_input_detection(tmp_path):
    from revise_prep.errors import InputError
    from revise_prep.pipeline.step2 import step1_records

    (tmp_path / "pairs.jsonl").write_text('{"source_video_path": "a.mp4", "target_video_path": "b.mp4"}\n')
    with pytest.raises(InputError, match="JSON input list"):
        step1_records(tmp_path / "pairs.jsonl")
    (tmp_path / "list.txt").write_text("[clip].pkl\n")  # a list file whose record name starts with a bracket
    assert step1_records(tmp_path / "list.txt") == [tmp_path / "[clip].pkl"]
    (tmp_path / "out.revise-prep").mkdir()
    with pytest.raises(InputError, match="reports folder"):
        step1_records(tmp_path / "out.revise-prep")
