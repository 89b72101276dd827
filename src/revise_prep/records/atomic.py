"""Atomic file writes: a temporary file in the same folder, flushed, fsynced, renamed, and the folder fsynced.

Files are created with mode 0666 masked by the process's umask (0644 under umask 022), as ``open`` does, so
that training jobs of other users can read them. Temporary names are short and fixed in length
(``.tmp-<8 hex of the final name>.<8 random hex>``, 22 bytes), so any final name the filesystem takes can be
written, and a process can still find the temporaries of its own files after a crash.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

TMP_PREFIX = ".tmp-"
_TMP_RE = re.compile(r"^\.tmp-([0-9a-f]{8})\.[0-9a-f]{8}$")
_LEGACY_TMP_RE = re.compile(r"^\.tmp-(.+)\.[a-z0-9_]{8}$")  # earlier versions: .tmp-<final name>.<mkstemp's 8>


def _owner_tag(name: str) -> str:
    return hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def is_temporary(name: str) -> bool:
    """Whether a file name is one of our temporary files."""
    return _TMP_RE.match(name) is not None


def _create_temporary(folder: Path, final_name: str) -> tuple[int, Path]:
    """A new temporary file next to ``final_name``; the kernel applies the umask (and default ACLs)."""
    tag = _owner_tag(final_name)
    while True:
        tmp = folder / f"{TMP_PREFIX}{tag}.{secrets.token_hex(4)}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable (a record that exists survives a power cut)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename itself is done
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    fd, tmp = _create_temporary(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if fsync:
        fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def clean_temporaries(folder: str | Path, names: set[str] | None = None) -> int:
    """Remove temporary files left by a killed writer (only those of files in ``names``, when given, so that a
    process never deletes another one's write in progress); returns how many were removed."""
    tags = None if names is None else {_owner_tag(n) for n in names}
    removed = 0
    for tmp in Path(folder).glob(TMP_PREFIX + "*"):
        match, legacy = _TMP_RE.match(tmp.name), _LEGACY_TMP_RE.match(tmp.name)
        if match is not None:
            if tags is not None and match.group(1) not in tags:
                continue
        elif legacy is None or (names is not None and legacy.group(1) not in names):
            continue
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def check_writable(folder: str | Path) -> None:
    """Create and remove one temporary file in ``folder``: raises the ``OSError`` a record's write would meet
    (EACCES, EROFS, ENOSPC...), before any work is done. Permission bits alone would not tell (root, ACLs,
    read-only mounts)."""
    fd, tmp = _create_temporary(Path(folder), ".write-check")
    os.close(fd)
    os.unlink(tmp)
