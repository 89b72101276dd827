"""The decode supervisor: results in input order, a worker that dies or hangs costs only the sample it held.

The workers here die by real signals sent to themselves from the test's decode function (SIGSEGV as a
crashing decoder, SIGSTOP as a decoder stuck inside C code), not through any hook in the product.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from pathlib import Path

import torch

from revise_prep.pipeline.stage import Decoded, WorkItem
from revise_prep.pipeline.engines.local.workers import DecodePool


class SignalStage:
    """decode: item ``i`` -> a tensor of value i; items in ``crash`` segfault the worker (in ``once``: only the
    first time, remembered through a marker file); items in ``hang`` stop the worker (a hang no alarm breaks)."""

    def __init__(self, marks: Path, crash=(), once=(), hang=()) -> None:
        self.marks, self.crash, self.once, self.hang = marks, set(crash), set(once), set(hang)

    def decode(self, item: WorkItem) -> Decoded:
        marker = self.marks / f"{item.index}.{os.getpid()}"
        marker.touch()  # which process tried which item (independent evidence of the retry)
        if item.index in self.crash or (item.index in self.once and len(self.tries(item.index)) == 1):
            faulthandler.disable()  # pytest's, inherited by the fork: its dump of this crash would fill the log
            os.kill(os.getpid(), signal.SIGSEGV)
        if item.index in self.hang:
            os.kill(os.getpid(), signal.SIGSTOP)
        return Decoded(item, torch.full((3, 64, 64), item.index, dtype=torch.uint8))

    def tries(self, index: int) -> list[str]:
        return sorted(p.suffix for p in self.marks.glob(f"{index}.*"))


def items(n: int) -> list[WorkItem]:
    return [WorkItem(i, f"s{i}", None) for i in range(n)]


def shm_files() -> set[str]:
    """What is in /dev/shm (a tensor shared by file name is a ``torch_<pid of its maker>_...`` file there)."""
    shm = Path("/dev/shm")
    return {f.name for f in shm.iterdir()} if shm.is_dir() else set()


def made_by(names: set[str], pids: set[str]) -> list[str]:
    return [n for n in names if n.split("_")[1:2] and n.split("_")[1] in pids]


def test_results_in_order_and_a_crashing_sample_retried_once_then_failed(tmp_path):
    stage = SignalStage(tmp_path, crash={2}, once={5})
    pool = DecodePool(stage.decode, 2)
    before = shm_files()  # left by an earlier process that had one of our workers' pids: not theirs
    results = pool.map(items(9))
    run = pool._run  # noqa: SLF001
    out = list(results)
    assert [d.item.index for d in out] == list(range(9))
    for d in out:
        if d.item.index == 2:
            assert d.error.reason == "decoder_crashed" and "SIGSEGV" in d.error.message and "s2" in d.error.message
        else:
            assert d.error is None, d.error
            assert torch.equal(d.data, torch.full((3, 64, 64), d.item.index, dtype=torch.uint8))
    assert len(set(stage.tries(2))) == 2 and len(set(stage.tries(5))) == 2  # retried in another process
    assert len(stage.tries(0)) == 1
    assert pool.stats.worker_crashes == 3 and pool.stats.retried == 2
    assert pool.stats.worker_restarts >= 2
    # the workers left at the end were stopped, not killed (the replacements too: the kernel kills them when the
    # thread that forked them ends): a killed worker never lets go of the last result it sent
    assert [w.proc.exitcode for w in run.workers] == [0, 0]
    del out, d
    pids = {p.suffix[1:] for p in tmp_path.iterdir()}
    # the workers' shared memory is freed with the results, also that of the killed ones
    assert not made_by(shm_files() - before, pids)


def test_results_still_on_their_way_when_closed_leave_no_shared_memory(tmp_path):
    """Closed while a worker decodes: what it sends afterwards is read and dropped, not left in the pipe holding
    its segment until the process exits."""
    def decode(item: WorkItem) -> Decoded:
        (tmp_path / f"{item.index}.{os.getpid()}").touch()
        time.sleep(0.5)
        return Decoded(item, torch.full((3, 64, 64), item.index, dtype=torch.uint8))

    before = shm_files()
    results = DecodePool(decode, 2).map(items(8))
    first = next(results)
    deadline = time.monotonic() + 30
    while len(list(tmp_path.iterdir())) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(list(tmp_path.iterdir())) >= 3  # a sample after the first two is being decoded now
    results.close()
    assert first.item.index == 0
    del first
    assert not made_by(shm_files() - before, {p.suffix[1:] for p in tmp_path.iterdir()})


def test_a_hung_worker_is_killed_after_the_timeout(tmp_path):
    stage = SignalStage(tmp_path, hang={1})
    pool = DecodePool(stage.decode, 2, timeout=2.0)
    start = time.monotonic()
    out = list(pool.map(items(5)))
    assert time.monotonic() - start < 60
    assert [d.item.index for d in out] == list(range(5))
    assert out[1].error.reason == "decode_timeout" and "2 s" in out[1].error.message
    assert all(d.error is None for i, d in enumerate(out) if i != 1)
    assert pool.stats.decode_timeouts == 1 and pool.stats.worker_crashes == 0
    assert len(stage.tries(1)) == 1  # a timeout is not retried


def test_every_worker_dying_still_ends(tmp_path):
    stage = SignalStage(tmp_path, crash={0, 1, 2, 3})
    out = list(DecodePool(stage.decode, 1).map(items(4)))
    assert [d.error.reason for d in out] == ["decoder_crashed"] * 4


def test_inline_deadline_times_out_and_leaves_the_callers_timer_running():
    """Inline decoding's SIGALRM deadline fails a sample that runs over, then re-arms a timer its caller had set
    (pytest-timeout's, a user's harness) with what it had left, and puts the caller's handler back."""
    from revise_prep.pipeline.engines.local.workers import decode_one

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    outer = signal.setitimer(signal.ITIMER_REAL, 30.0)
    try:
        slow = decode_one(lambda item: time.sleep(5), WorkItem(0, "s0", None), timeout=0.2)
        assert slow.error is not None and slow.error.reason == "decode_timeout"
        fast = decode_one(lambda item: Decoded(item, torch.zeros(1)), WorkItem(1, "s1", None), timeout=5)
        assert fast.error is None
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 28.0 < left <= 30.0 and not fired  # still armed, for the rest of its 30 s
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        time.sleep(0.5)
        assert fired == [1]  # and the caller's handler is the one that runs
    finally:
        signal.setitimer(signal.ITIMER_REAL, *outer)
        signal.signal(signal.SIGALRM, previous)
