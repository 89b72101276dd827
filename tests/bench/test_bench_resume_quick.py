"""bench/resume.py keeps running (its --quick mode, in seconds)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_resume_bench_quick():
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "resume.py"), "--quick"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| 50 |" in proc.stdout and "done index" in proc.stdout
