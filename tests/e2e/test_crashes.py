"""Crash-proof runs, end to end with real signals: a decode worker SIGKILLed or stopped (a hang no alarm can
break) costs only the sample it held; a main process killed twice on the same sample quarantines it.

Which sample a process holds is read from its open files while it is frozen (``procs``), so each signal lands
on a known sample; the expected outcomes follow from the signals the test sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from revise_prep.records.layout import sidecar_of
from revise_prep.testing.videos import make_video

from .conftest import cli
from .procs import catch, children, thaw

N_PAIRS = 8


@pytest.fixture(scope="module")
def crashy(tmp_path_factory) -> Path:
    """``N_PAIRS`` pairs of 720p clips (hard links of two files: decoding keeps a file open ~0.1 s, cheap to make)."""
    root = tmp_path_factory.mktemp("crashy")
    make_video(root / "src.mp4", frames=10, width=1280, height=720, seed=1)
    make_video(root / "tgt.mp4", frames=10, width=1280, height=720, seed=2)
    pairs = []
    for i in range(N_PAIRS):
        os.link(root / "src.mp4", root / f"p{i:02d}_src.mp4")
        os.link(root / "tgt.mp4", root / f"p{i:02d}_tgt.mp4")
        pairs.append({"source_video_path": f"p{i:02d}_src.mp4", "target_video_path": f"p{i:02d}_tgt.mp4",
                      "instruction": f"Instruction number {i} for this little clip."})
    (root / "pairs.json").write_text(json.dumps(pairs))
    (root / "pairs4.json").write_text(json.dumps(pairs[:4]))
    return root


def vae_args(data: Path, release: Path, out: Path, *extra: str, pairs: str = "pairs.json") -> list[str]:
    return ["vae", "--ckpt-dir", str(release), "--input", str(data / pairs), "--video-root", str(data),
            "--output-dir", str(out), "--vae-dtype", "float32", "--t5-dtype", "float32", "--text-len", "16",
            "--frame-num", "9", "--sampling-rate", "1", "--target-size", "32,48", "--no-progress", *extra]


def start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "revise_prep", *args], stdout=subprocess.DEVNULL,
                            stderr=log.open("w"), start_new_session=True)


def sample_held(files: set[str]) -> int | None:
    """The pair index whose video a process has open, if any."""
    held = {int(Path(f).name[1:3]) for f in files if Path(f).name.startswith("p") and f.endswith(".mp4")}
    return held.pop() if len(held) == 1 else None


def outcomes(out: Path) -> tuple[list[str], dict[int, dict]]:
    listed = [Path(p).stem for p in (sidecar_of(out) / "vae_features.txt").read_text().splitlines()]
    failures = {f["index"]: f for f in map(json.loads, (sidecar_of(out) / "failures.jsonl").read_text().splitlines())}
    return listed, failures


def names(indices) -> list[str]:
    return [f"p{i:02d}_tgt" for i in sorted(indices)]


def test_killed_decode_workers_cost_only_their_sample(crashy, wan_release, tmp_path):
    """Kill the worker holding sample A, then the fresh worker retrying A, then one holding B: A fails as
    decoder_crashed (SIGKILL named), B is retried and done, every other sample done; the run ends by itself."""
    out = tmp_path / "out"
    proc = start(vae_args(crashy, wan_release, out, "--num-workers", "2"), tmp_path / "stderr.txt")
    kills: list[int] = []
    try:
        while len(kills) < 3:
            def wanted(files, kills=tuple(kills)):
                s = sample_held(files)
                if s is None:
                    return None
                if len(kills) == 1 and not (out / f"p{kills[0]:02d}_tgt.pkl").exists():
                    return s if s == kills[0] else None  # A's retry (if it got away, any other sample)
                return s if s not in kills else None
            got = catch(lambda: children(proc.pid), wanted, alive=lambda: proc.poll() is None)
            if got is None:
                break
            pid, sample = got
            os.kill(pid, signal.SIGKILL)
            kills.append(sample)
        status = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert len(kills) >= 2, f"the run ended before two workers could be killed ({kills})"
    twice = {s for s, n in Counter(kills).items() if n == 2}
    assert status == (4 if twice else 0), (tmp_path / "stderr.txt").read_text()[-3000:]  # 4: some samples failed
    listed, failures = outcomes(out)
    assert listed == names(set(range(N_PAIRS)) - twice)  # the rest, each once, in input order
    assert set(failures) == twice
    for f in failures.values():
        assert f["reason"] == "decoder_crashed" and "SIGKILL" in f["message"]
    summary = json.loads((sidecar_of(out) / "summary.json").read_text())
    assert summary["reliability"]["worker_crashes"] == len(kills)
    assert summary["reliability"]["retried"] == len(set(kills))
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()


def test_a_stopped_worker_is_killed_after_the_decode_timeout(crashy, wan_release, tmp_path):
    """SIGSTOP (what a decoder deadlocked inside FFmpeg looks like from outside): that sample decode_timeout."""
    out = tmp_path / "out"
    proc = start(vae_args(crashy, wan_release, out, "--num-workers", "2", "--decode-timeout", "6"),
                 tmp_path / "stderr.txt")
    stopped = None
    try:
        got = catch(lambda: children(proc.pid), sample_held, alive=lambda: proc.poll() is None)
        assert got is not None, "no worker was seen decoding"
        stopped, sample = got  # left stopped
        assert proc.wait(timeout=300) == 4, (tmp_path / "stderr.txt").read_text()[-3000:]  # 4: a sample failed
    finally:
        if stopped is not None:
            thaw(stopped)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    listed, failures = outcomes(out)
    assert set(failures) == {sample}, (sample, failures)
    assert listed == names(set(range(N_PAIRS)) - {sample})
    assert list(failures) == [sample] and failures[sample]["reason"] == "decode_timeout"
    summary = json.loads((sidecar_of(out) / "summary.json").read_text())
    assert summary["reliability"]["decode_timeouts"] == 1 and summary["reliability"]["worker_crashes"] == 0


def test_main_process_killed_twice_on_one_sample_quarantines_it(crashy, wan_release, tmp_path):
    """Inline decoding: SIGKILL the run twice while it decodes pair 1; the third run fails it as
    crashed_repeatedly and does the rest; --retry-crashed then does it too."""
    out = tmp_path / "out"
    args = vae_args(crashy, wan_release, out, "--num-workers", "0", pairs="pairs4.json")
    for attempt in range(2):
        proc = start(args, tmp_path / f"stderr{attempt}.txt")
        try:
            got = catch(lambda: [proc.pid], lambda files: True if sample_held(files) == 1 else None,
                        alive=lambda: proc.poll() is None)
            assert got is not None, f"run {attempt} was never seen decoding pair 1"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert not (out / "p01_tgt.pkl").exists()
    third = cli(*args, status=4)  # 4: a sample failed
    listed, failures = outcomes(out)
    assert listed == names({0, 2, 3}) and list(failures) == [1]
    assert failures[1]["reason"] == "crashed_repeatedly" and "--retry-crashed" in failures[1]["message"]
    assert "crashed_repeatedly" in third.stderr and "Traceback" not in third.stderr
    assert json.loads((sidecar_of(out) / "summary.json").read_text())["reliability"]["quarantined"] == 1
    cli(*args, "--retry-crashed")
    listed, failures = outcomes(out)
    assert listed == names(range(4)) and not failures
