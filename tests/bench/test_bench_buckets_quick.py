"""Smoke test: ``bench/buckets.py --quick`` runs, counts more kept samples with buckets than without, and its epoch
table adds up (whole batches of 8; merging never loses a sample that trained without it)."""

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
    epochs = [line.split("|")[1:-1] for line in out.read_text().splitlines()
              if line.startswith("| mixed") or line.startswith("| skewed")]
    assert len(epochs) == 9
    for name, kept, config, buckets, batches, samples, of_kept, of_input, shortest in epochs:
        assert int(samples) == 8 * int(batches) <= int(kept) and of_kept.strip().endswith("%")
    for first in (0, 3, 6):  # per set: without merging, then merged at 8 and at 64
        plain, *merged = (int(row[5]) for row in epochs[first:first + 3])
        assert all(m >= plain for m in merged)
