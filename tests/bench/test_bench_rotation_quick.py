"""Smoke test: ``bench/rotation.py --quick`` runs, checks the rotated frames against np.rot90 and prints a ratio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_rotation_quick():
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "rotation.py"), "--quick", "--repeats", "2"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ratio rotated/stored:" in proc.stdout
