"""Keep two processes from writing the same share of one output folder.

Each process holds an exclusive ``flock`` on ``.locks/w<world>-r<rank>.lock`` and a shared one on
``.locks/world-<world>.lock`` for the whole run. The kernel drops both when a holder dies (even on
SIGKILL), so a crashed run never blocks its resume. A second process with the same rank, or one
launched with another world size while a run is active, stops at once with a clear message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from revise_prep.errors import FolderBusyError  # noqa: F401 - re-exported: callers import it from here
from revise_prep.records.layout import LOCK_DIR


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


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
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.release()
                raise FolderBusyError(f"{self.dir.parent}: a run with {other.stem.split('-')[1]} process(es) is "
                                      f"writing here; wait for it or use another output folder") from None
            finally:
                os.close(fd)
        path = self.dir / f"w{self.world}-r{self.rank}.lock"
        fd = _open(path)
        self._fds.append(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Path(path).read_text().strip() or "?"
            self.release()
            raise FolderBusyError(f"{self.dir.parent}: rank {self.rank} of {self.world} is already being written by "
                                  f"another process (pid {holder}); not starting a second writer") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
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
