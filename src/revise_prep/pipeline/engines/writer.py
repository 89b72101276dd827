"""Write records: atomically under their final name, fsync'd; an error no later record can escape stops the run.

:func:`write_record` is what every engine writes with; :class:`RecordWriter` runs it on a background
thread so serialisation and disk I/O stay off the local engine's encode loop.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from revise_prep.records.atomic import atomic_write_bytes
from revise_prep.records.formats import serialize

log = logging.getLogger(__name__)

#: OS errors after which no further record can be written: the run stops (resume completes it).
FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class FatalWriteError(RuntimeError):
    """The output folder cannot take more records (disk full, read-only, permission denied)."""


def write_record(path: Path, record: dict, *, fsync: bool = True) -> None:
    """Serialise ``record`` and write it atomically to ``path``; raises :class:`FatalWriteError` when the folder
    cannot take more records (any other error concerns this record only)."""
    try:
        atomic_write_bytes(path, serialize(record, path), fsync=fsync)
    except OSError as err:
        if err.errno in FATAL_ERRNOS:
            raise FatalWriteError(f"cannot write {path}: {err.strerror} "
                                  "(free space / fix permissions, then re-run the same command to resume)") from None
        raise


class RecordWriter:
    """A bounded queue drained by one thread; ``on_done(key, path, error)`` reports each write."""

    def __init__(self, on_done: Callable[[Any, Path, BaseException | None], None], *, max_pending: int = 4,
                 fsync: bool = True) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._on_done = on_done
        self._fsync = fsync
        self.fatal: FatalWriteError | None = None
        self._thread = threading.Thread(target=self._run, name="record-writer", daemon=True)
        self._thread.start()

    def put(self, key: Any, path: Path, record: dict, ticket=None, *, release: bool = True) -> None:
        """Queue a record; blocks when ``max_pending`` are waiting; raises once writing has become impossible.
        ``ticket`` (``handoff.Ticket``): wait for the record's copies from the GPU before writing it, then give
        their buffers back (unless ``release`` is False: another record queued later shares them)."""
        if self.fatal is not None:
            raise self.fatal
        self._queue.put((key, path, record, ticket, release))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            key, path, record, ticket, release = item
            try:
                self._write(key, path, record, ticket)
            finally:
                if ticket is not None and release:
                    ticket.release()

    def _write(self, key: Any, path: Path, record: dict, ticket) -> None:
        if self.fatal is not None:  # drop silently: the run is stopping, these samples stay undone
            return
        try:
            if ticket is not None:
                ticket.wait()
            write_record(path, record, fsync=self._fsync)
        except FatalWriteError as err:
            self.fatal = err
            log.error("%s", self.fatal)
        except Exception as err:  # noqa: BLE001 - a bad record must not stop the others
            self._on_done(key, path, err)
        else:
            self._on_done(key, path, None)

    def close(self) -> None:
        """Wait for every queued record to be written; re-raise a fatal write error."""
        self._queue.put(None)
        self._thread.join()
        if self.fatal is not None:
            raise self.fatal
