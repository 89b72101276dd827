"""Smoke test: ``bench/ar_step.py --quick`` runs step 2 with 0 and 2 workers and finds their records identical."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_ar_quick(tmp_path):
    out = tmp_path / "table.md"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "ar_step.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| --num-workers |" in proc.stdout
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines() if line.startswith("| ") and
            line.split("|")[1].strip().isdigit()]
    assert sorted((r[0].strip(), r[1].strip()) for r in rows) == [("0", "all 8"), ("0", "used only"),
                                                                 ("2", "all 8"), ("2", "used only")]
    for r in rows:
        assert r[2].strip() == "3" and float(r[4]) > 0 and r[6].strip() == "yes", r
