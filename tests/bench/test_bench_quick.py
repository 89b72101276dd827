"""Smoke tests: the benchmark scripts run in ``--quick`` mode on CPU and print their tables (so they never rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(script: str, tmp_path: Path, *extra: str) -> str:
    out = tmp_path / f"{script}.md"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / f"{script}.py"), "--quick", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert len(table) >= 3, proc.stdout  # header, separator, at least one row
    assert out.read_text().strip() == proc.stdout.strip()
    return proc.stdout


def test_bench_pipeline_quick(tmp_path):
    text = _run("pipeline", tmp_path, "--workers", "0,2")
    assert "| pure model" in text and "num_workers=0" in text and "num_workers=2" in text


def test_bench_gpu_quick(tmp_path):
    text = _run("gpu", tmp_path)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    for row in ("cuDNN version (torch.backends.cudnn.version())", "float32, --strict-fp32 (the reference)",
                "float32, the default (TF32 allowed, cudnn.benchmark, padding folded)", "float32, --vae-channels-last",
                "bfloat16", "bfloat16, --vae-channels-last", "float32, --compile (eager backend)", "step 1 / pure",
                "GPU utilisation, step 1 (from the models being ready)"):
        assert row in rows, row
    assert "graph breaks" in rows["float32, --compile (eager backend)"]  # it ran, not "failed" / "not done"
    assert rows["float32, --strict-fp32 (the reference)"].split(" | ")[3] == "0 / 0"
    assert any(k.startswith("`run` (VAE + umT5 + VILA-8B resident") for k in rows)
    first = next(line for k, line in rows.items() if k.startswith("step 1: seconds from the models being ready"))
    assert first.split(" | ")[1].strip(" |") != "n/a"


def test_bench_gpu_full_refuses_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: the full run is the real benchmark")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py")], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stderr


def test_bench_precision_quick(reference, tmp_path):
    text = _run("precision", tmp_path, "--reference", str(reference))
    for row in ("VAE bfloat16 vs float32", "VAE tiled vs untiled", "umT5 bfloat16 vs float32"):
        assert row in text, row


def test_bench_skipping_quick(tmp_path):
    text = _run("skipping", tmp_path)
    assert "step 1" in text and "step 2" in text and "| NO |" not in text


def test_bench_log_volume_quick(tmp_path):
    text = _run("log_volume", tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| `vae`") or line.startswith("| planning")]
    assert len(rows) == 2 and "exit 0" in rows[0]
    assert int(rows[1].split("|")[2]) < 20  # 2,000 entries, 1,995 renamed: a handful of lines, not one each


def test_bench_handoff_quick(tmp_path):
    text = _run("handoff", tmp_path)
    for row in ("DataLoader (before)", "DecodePool (after)", "worker death", "| before: fresh shared memory",
                "| after: reused slots"):
        assert row in text, row


def test_bench_preflight_quick(tmp_path):
    text = _run("preflight", tmp_path)
    assert "| empty input | 5, " in text and "| --num-workers -1 | 2, " in text
    assert "command to first model load, 2,000 pairs" in text and "nan" not in text
