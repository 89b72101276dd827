"""Writing the zoo leaves the test process's scheduling as it was: SVT-AV1's encoder, run as root, made the
calling thread SCHED_FIFO 99, and the runs and Ray clusters that process started later spun on both cores."""

from __future__ import annotations

import os
import threading

import pytest

from revise_prep.testing.zoo import build_zoo, keep_scheduling

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling policies")


def _policy() -> tuple[int, int]:
    return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority


def test_writing_the_av1_entry_keeps_the_scheduling_policy(tmp_path):
    before = _policy()
    assert build_zoo(tmp_path, ["av1_svt"])["av1_svt"].stat().st_size > 0
    assert _policy() == before
    seen = []
    thread = threading.Thread(target=lambda: seen.append(_policy()))
    thread.start()
    thread.join()
    assert seen == [before]  # nor does a thread started afterwards inherit a real-time policy


def test_keep_scheduling_restores_a_policy_changed_inside():
    before = _policy()
    with keep_scheduling():
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # allowed without privileges
        assert _policy() == (os.SCHED_BATCH, 0)
    assert _policy() == before
