"""Smoke test: ``bench/frames.py --quick`` runs, prints its table and finds both readers identical."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_frames_quick(tmp_path):
    out = tmp_path / "table.md"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "frames.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| video |" in proc.stdout
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| tiny_")]
    assert len(rows) >= 2
    assert all(line.rstrip().endswith("| yes |") for line in rows)
