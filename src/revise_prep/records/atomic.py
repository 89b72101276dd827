"""Atomic file writes: a temporary file in the same folder, flushed, fsynced and renamed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TMP_PREFIX = ".tmp-"


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
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


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def clean_temporaries(folder: str | Path, names: set[str] | None = None) -> int:
    """Remove temporary files left by a killed writer (only those of files in ``names``, when given, so that a
    process never deletes another one's write in progress); returns how many were removed."""
    removed = 0
    for tmp in Path(folder).glob(TMP_PREFIX + "*"):
        if names is not None and tmp.name[len(TMP_PREFIX):].rsplit(".", 1)[0] not in names:
            continue
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed
