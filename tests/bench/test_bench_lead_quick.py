"""bench/resume.py and bench/run_vs_steps.py keep running (their --quick modes)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_resume_bench_quick():
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "resume.py"), "--quick"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| 50 |" in proc.stdout and "done index" in proc.stdout


def test_run_vs_steps_bench_quick():
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run_vs_steps.py"), "--quick", "--workers", "0"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "run (one pass)" in proc.stdout and "ratio" in proc.stdout


def test_resample_bench_quick():
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "resample.py"), "--quick"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
