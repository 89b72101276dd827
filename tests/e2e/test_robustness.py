"""Crash safety: SIGKILL at random points then resume (exactly once), concurrent writers, read-only folder."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from revise_prep.records import load_record
from revise_prep.records.layout import sidecar_of
from revise_prep.testing.videos import make_video

from .conftest import as_another_user, cli

N_PAIRS = 12


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("many")
    pairs = []
    for i in range(N_PAIRS):
        for role in ("src", "tgt"):
            make_video(root / f"p{i:02d}_{role}.mp4", frames=8, width=48, height=32, seed=3 * i + len(role))
        pairs.append({"source_video_path": f"p{i:02d}_src.mp4", "target_video_path": f"p{i:02d}_tgt.mp4",
                      "instruction": f"Instruction number {i} for this little clip."})
    (root / "pairs.json").write_text(json.dumps(pairs))
    return root


def args(many: Path, release: Path, out: Path, workers: str = "1") -> list[str]:
    return ["-m", "revise_prep", "vae", "--ckpt-dir", str(release), "--input", str(many / "pairs.json"),
            "--video-root", str(many), "--output-dir", str(out), "--vae-dtype", "float32", "--t5-dtype", "float32",
            "--text-len", "16", "--frame-num", "5", "--sampling-rate", "1", "--target-size", "32,48",
            "--num-workers", workers, "--no-progress"]


def check_exactly_once(out: Path) -> list[str]:
    listed = (sidecar_of(out) / "vae_features.txt").read_text().splitlines()
    names = [Path(p).stem for p in listed]
    assert names == [f"p{i:02d}_tgt" for i in range(N_PAIRS)]  # every sample once, in input order
    for p in listed:
        load_record(p)
    assert not list(out.glob(".tmp-*"))
    assert len(list(out.glob("*.pkl"))) == N_PAIRS
    return listed


def test_sigkill_at_random_points_then_resume(many, wan_release, tmp_path):
    rng = random.Random(20261125)
    out = tmp_path / "out"
    kills = []
    for attempt in range(4):
        proc = subprocess.Popen([sys.executable, *args(many, wan_release, out)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        delay = rng.uniform(3.0, 12.0)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the main process and its decoding workers
            proc.wait()
        done = len(list(out.glob("*.pkl"))) if out.exists() else 0
        kills.append((round(delay, 2), proc.returncode, done))
    # two kills can land while the same sample is being encoded, which quarantines it (crashed_repeatedly):
    # a SIGKILL from outside looks like a crash it caused; --retry-crashed does it anyway
    cli(*args(many, wan_release, out)[2:], "--retry-crashed")
    listed = check_exactly_once(out)
    summary = json.loads((sidecar_of(out) / "summary.json").read_text())
    assert summary["by_status"].get("done", 0) + summary["by_status"].get("resumed", 0) == N_PAIRS
    print("kills (delay s, return code, records on disk):", kills)
    assert len(set(listed)) == len(listed)


def test_second_writer_is_refused(many, wan_release, tmp_path):
    """While a writer holds rank 0 of 1 (held here in-process through the same lock), other runs refuse."""
    from revise_prep.pipeline.locks import ShareLock

    out = tmp_path / "out"
    out.mkdir()
    with ShareLock(sidecar_of(out), 0, 1):
        second = cli(*args(many, wan_release, out, "0")[2:], check=False)
        assert second.returncode == 3 and "already being written" in second.stderr
        other_world = cli(*args(many, wan_release, out, "0")[2:], env={"RANK": "0", "WORLD_SIZE": "2"}, check=False)
        assert other_world.returncode == 3 and "is writing here" in other_world.stderr
        assert not list(out.glob("*.pkl"))  # neither wrote anything
    cli(*args(many, wan_release, out, "0")[2:])  # lock released: the run goes through
    check_exactly_once(out)


def test_lock_of_a_killed_holder_is_released(many, wan_release, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, *args(many, wan_release, out, "0")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while not (sidecar_of(out) / ".locks" / "w1-r0.lock").exists() and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    cli(*args(many, wan_release, out)[2:])
    check_exactly_once(out)


def test_read_only_folder_stops_cleanly_and_resume_completes(many, wan_release):
    prefix = as_another_user() or []  # root ignores folder modes: the run is made as user 65534
    base = Path(tempfile.mkdtemp(prefix="revise-prep-ro-"))
    try:
        base.chmod(0o777)
        data, release = base / "data", base / "release"  # readable by the unprivileged user
        shutil.copytree(many, data)
        shutil.copytree(wan_release, release)
        for p in [base, *base.rglob("*")]:
            p.chmod(0o777 if p.is_dir() else 0o644)
        out = base / "out"
        cmd = [*prefix, sys.executable, *args(data, release, out, "0")]
        out.mkdir()
        out.chmod(0o555)
        denied = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=base)
        assert denied.returncode == 3, denied.stderr[-3000:]
        assert "Permission denied" in denied.stderr and "Traceback" not in denied.stderr
        out.chmod(0o777)
        ok = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=base)
        assert ok.returncode == 0, ok.stderr[-3000:]
        check_exactly_once(out)
    finally:
        for p in base.rglob("*"):
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(base, ignore_errors=True)
