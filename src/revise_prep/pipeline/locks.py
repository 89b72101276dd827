"""Keep two processes from writing the same share of one output folder.

Each process holds an exclusive ``flock`` on ``.locks/w<world>-r<rank>.lock`` and a shared one on
``.locks/world-<world>.lock`` for the whole run. The kernel drops both when a holder dies (even on
SIGKILL), so a crashed run never blocks its resume. A second process with the same rank, or one
launched with another world size while a run is active, stops at once with a clear message.
A rank's lock file holds its holder's ``pid host``; ``revise-prep status`` tells a held lock (a live run) from
a file left by a run that is gone by asking for the lock itself for an instant (``records/journals.py``), so a
refused lock is asked again for a moment before a run gives up.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from revise_prep.errors import FolderBusyError  # noqa: F401 - re-exported: callers import it from here
from revise_prep.records.layout import LOCK_DIR


#: Seconds a refused lock is asked for again: another process may be looking at it for an instant (status).
RETRY_SECONDS = 1.0


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _try_lock(fd: int, mode: int) -> bool:
    """Take ``mode`` without blocking on a lock held for good; a lock held for an instant is waited for."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def holder_text(content: str) -> str:
    """``"pid 123 on node7"`` from a lock file's ``123 node7`` (earlier versions wrote the pid only)."""
    pid, _, host = content.strip().partition(" ")
    return f"pid {pid or '?'}" + (f" on {host}" if host else "")


class ShareLock:
    """Context manager holding this rank's share of ``out``."""

    def __init__(self, out: Path, rank: int, world: int) -> None:
        self.dir = Path(out) / LOCK_DIR
        self.rank, self.world = rank, world
        self._fds: list[int] = []

    def __enter__(self) -> "ShareLock":
        self.dir.mkdir(parents=True, exist_ok=True)
        world_fd = _open(self.dir / f"world-{self.world}.lock")
        self._fds.append(world_fd)
        fcntl.flock(world_fd, fcntl.LOCK_SH)
        for other in self.dir.glob("world-*.lock"):
            if other.name == f"world-{self.world}.lock":
                continue
            fd = _open(other)
            try:
                if not _try_lock(fd, fcntl.LOCK_EX):
                    self.release()
                    raise FolderBusyError(f"{self.dir.parent}: a run with {other.stem.split('-')[1]} process(es) is "
                                          f"writing here; wait for it or use another output folder")
            finally:
                os.close(fd)
        path = self.dir / f"w{self.world}-r{self.rank}.lock"
        fd = _open(path)
        self._fds.append(fd)
        if not _try_lock(fd, fcntl.LOCK_EX):
            holder = holder_text(Path(path).read_text())
            self.release()
            raise FolderBusyError(f"{self.dir.parent}: rank {self.rank} of {self.world} is already being written by "
                                  f"another process ({holder}); not starting a second writer "
                                  f"(`revise-prep status {self.dir.parent}` shows where it stands)")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        return self

    def release(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)  # closing drops the flock
            except OSError:
                pass
        self._fds.clear()

    def __exit__(self, *exc) -> None:
        self.release()
