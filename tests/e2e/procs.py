"""Real signals from the test to the pipeline's processes: find them in /proc, freeze one, look at its open files.

A process is frozen (SIGSTOP, then waited for until the kernel reports it stopped) before its open files are
read, so what it holds cannot change between the look and the signal the test then sends.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the decode workers of a run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _state(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


def open_files(pid: int) -> set[str]:
    files = set()
    fd_dir = Path("/proc") / str(pid) / "fd"
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return files
    for fd in fds:
        try:
            files.add(os.readlink(fd))
        except OSError:
            continue
    return files


def freeze(pid: int) -> bool:
    """SIGSTOP ``pid`` and wait until it is stopped; False when it is gone."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = _state(pid)
        if state in ("T", "t"):
            return True
        if state in ("X", "Z"):
            return False
        time.sleep(0.0005)
    return False


def thaw(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def catch(pids: Callable[[], list[int]], match: Callable[[set[str]], object], *, alive: Callable[[], bool],
          timeout: float = 120.0, pause: float = 0.002):
    """Poll ``pids()`` until one, frozen, has open files for which ``match`` returns something; return
    (pid, that) with the process left stopped, or None once ``alive()`` is false or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        for pid in pids():
            if not freeze(pid):
                continue
            found = match(open_files(pid))
            if found is not None:
                return pid, found
            thaw(pid)
        time.sleep(pause)
    return None
