"""Smoke test: ``bench/buckets.py --quick`` runs and counts more kept samples with buckets than without."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_buckets_quick(tmp_path):
    out = tmp_path / "table.md"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "buckets.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = next(line for line in out.read_text().splitlines() if line.startswith("| **all**"))
    samples, original, bucketed = map(int, re.findall(r"\d+", row))
    assert original < bucketed <= samples
