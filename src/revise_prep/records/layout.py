"""Where a run's files go: the records, the list file, the reports and the bookkeeping of resume.

Two layouts, one rule: a folder the original ReViSE step 2 may list holds nothing but records.

* ``records_only`` (step-1 output folders: ``vae``, and ``run --keep-intermediate``'s ``vae_features/``): the
  output folder holds only ``<name>.pkl`` records (and, while a write is in progress, its temporary file).
  Everything else goes in the sidecar folder beside it, ``<output-dir>.revise-prep/``: the list file,
  ``failures.jsonl``, ``notes.jsonl``, ``summary.json``, ``config.json``, ``.done/``, ``.parts/``, ``.locks/``,
  ``.inflight/``.
  The original step 2 lists its ``$DATA_FILE`` folder with ``os.listdir`` and unpickles every entry; any other
  entry would make it recurse into the next record (a duplicate) or crash.
* inline (step-2 and ``run`` output folders, which only training reads, through the list file): all of the above
  in the output folder itself, as before.

Earlier versions wrote step-1 folders inline; :meth:`OutputLayout.prepare` moves those files to the sidecar.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from revise_prep.errors import FolderBusyError, InputError

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".revise-prep"
FAILURES_FILE = "failures.jsonl"
NOTES_FILE = "notes.jsonl"  # every sample written under a changed name or with a cut prompt
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"
PARTS_DIR = ".parts"
DONE_DIR = ".done"
LOCK_DIR = ".locks"
INFLIGHT_DIR = ".inflight"  # samples in flight when a run died (pipeline/inflight.py)
REPORT_FILES = (FAILURES_FILE, NOTES_FILE, SUMMARY_FILE, CONFIG_FILE)
BOOKKEEPING_DIRS = (DONE_DIR, PARTS_DIR, LOCK_DIR, INFLIGHT_DIR)


def absolute(path: str | os.PathLike[str]) -> Path:
    """An absolute path without resolving symlinks (the folder as the user named it)."""
    return Path(os.path.abspath(os.fspath(path)))


def sidecar_of(records: str | os.PathLike[str]) -> Path:
    """The sidecar folder of a records-only output folder: ``<folder>.revise-prep`` beside it."""
    records = absolute(records)
    if records.parent == records:
        raise InputError(f"{records}: cannot write records into the filesystem root")
    return records.parent / (records.name + SIDECAR_SUFFIX)


@dataclass(frozen=True)
class OutputLayout:
    """The paths of one output folder; ``meta`` is the sidecar (records-only) or the folder itself (inline)."""

    records: Path
    meta: Path
    list_name: str

    @classmethod
    def for_output(cls, out: str | os.PathLike[str], list_name: str, *, records_only: bool) -> "OutputLayout":
        records = absolute(out)
        if any(c in str(records) for c in "\n\r"):
            raise InputError(f"{str(records)!r}: an output path with a line break cannot go into a list file")
        return cls(records, sidecar_of(records) if records_only else records, list_name)

    @property
    def records_only(self) -> bool:
        return self.meta != self.records

    @property
    def list_file(self) -> Path:
        return self.meta / self.list_name

    @property
    def failures(self) -> Path:
        return self.meta / FAILURES_FILE

    @property
    def notes(self) -> Path:
        return self.meta / NOTES_FILE

    @property
    def summary(self) -> Path:
        return self.meta / SUMMARY_FILE

    @property
    def config(self) -> Path:
        return self.meta / CONFIG_FILE

    def prepare(self) -> "OutputLayout":
        """Create the folders (one line naming the problem when impossible) and migrate an inline step-1 folder."""
        for folder in (self.records, self.meta):
            if folder.exists() and not folder.is_dir():
                raise InputError(f"{folder}: exists and is not a folder (choose another output folder)")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise InputError(f"{folder}: cannot create the output folder: {err.strerror or err}") from err
        if self.records_only:
            migrate_inline(self)
        return self


def migrate_inline(layout: OutputLayout) -> int:
    """Move reports and bookkeeping an earlier version wrote into a step-1 records folder to its sidecar.

    Safe to run by several ranks at once (each move is one atomic rename; a lost race is ignored). Returns how
    many entries were moved. Stops when a process of an earlier version still holds a lock in the old place.
    """
    old, new = layout.records, layout.meta
    entries = [n for n in (*REPORT_FILES, layout.list_name, *BOOKKEEPING_DIRS) if os.path.lexists(old / n)]
    if not entries:
        return 0
    old_locks = old / LOCK_DIR
    if old_locks.is_dir():
        for lock in old_locks.glob("*.lock"):
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FolderBusyError(f"{old}: an earlier version of revise-prep is writing here "
                                      f"({lock.name}); wait for it to finish") from None
            finally:
                os.close(fd)
    moved = 0
    for name in entries:
        src, dst = old / name, new / name
        if name == LOCK_DIR:
            shutil.rmtree(src, ignore_errors=True)
        elif src.is_dir():
            dst.mkdir(exist_ok=True)
            for item in src.iterdir():
                target = dst / item.name if not (dst / item.name).exists() else dst / f"legacy-{item.name}"
                _move(item, target)
            try:
                src.rmdir()
            except OSError:
                pass
        elif dst.exists():
            src.unlink(missing_ok=True)  # the report is rewritten by this run
        else:
            _move(src, dst)
        moved += 1
    log.info("%s: moved %d report and bookkeeping entr%s of an earlier version to %s (this folder now holds "
             "only records)", old, moved, "y" if moved == 1 else "ies", new)
    return moved


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except FileNotFoundError:  # another rank moved it first
        pass
