"""Smoke tests: the benchmark scripts run in ``--quick`` mode on CPU and print their tables (so they never rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "fixtures" / "reference"


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
    for row in ("VAE fp32", "VAE bf16", "umT5", "VILA", "pipeline / pure", "original-style"):
        assert row in text, row


def test_bench_gpu_full_refuses_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: the full run is the real benchmark")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py")], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stderr


def test_bench_precision_quick(tmp_path):
    if not (REFERENCE / "vae" / "config.json").is_file():
        pytest.skip(f"golden fixtures not found at {REFERENCE}")
    text = _run("precision", tmp_path)
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
    for row in ("DataLoader (before)", "DecodePool (after)", "worker death"):
        assert row in text, row


def test_bench_preflight_quick(tmp_path):
    text = _run("preflight", tmp_path)
    assert "| empty input | 5, " in text and "| --num-workers -1 | 2, " in text
    assert "command to first model load, 2,000 pairs" in text and "nan" not in text
