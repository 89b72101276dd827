"""Decide whether an existing record counts as done: it loads, has the keys, and was made with these settings."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

from revise_prep.records.reader import load_record
from revise_prep.records.schema import META_KEY, missing_keys
from revise_prep.settings import per_record_keys

log = logging.getLogger(__name__)

VALID, MISSING, INVALID, MISMATCHED = "valid", "missing", "invalid", "mismatched"

#: Signature keys newer than the records they check: a record made before a key existed lacks it and is judged
#: on the others (it was never redone for them before either); so is any record when the identity is unknown
#: now (models a caller loaded itself, naming no checkpoint). The checkpoints' identities (models/identity.py).
ADDED_KEYS = frozenset({"vae_weights", "t5_weights", "vila_weights"})


def check_record(path: Path, step: str, settings: dict[str, Any], keep: dict[str, Any] | None = None,
                 ) -> tuple[str, str]:
    """Return (state, detail): valid / missing / invalid (unreadable, truncated) / mismatched (other settings).

    ``keep``: a dict that receives the record's ``meta`` under "meta" when it was read."""
    try:
        if not path.exists():
            return MISSING, ""
    except OSError as err:  # e.g. a name the filesystem refuses: the write reports it for this sample only
        return MISSING, str(err)
    try:
        record = load_record(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file is simply redone
        return INVALID, f"unreadable ({type(err).__name__}: {err})"
    lacking = missing_keys(record, step)
    if lacking:
        return INVALID, f"missing keys {lacking}"
    meta = record.get(META_KEY)
    if keep is not None:
        keep["meta"] = meta
    if not isinstance(meta, dict) or meta.get("step") != step:
        return MISMATCHED, "no revise-prep meta (made by another tool or step)"
    theirs = meta.get("settings", {})
    own = per_record_keys(settings)  # with buckets each record holds its own size / frame count (the bucket set
    # itself is compared: another set differs there)
    diff = sorted(k for k in set(settings) | set(theirs) if k not in own and settings.get(k) != theirs.get(k)
                  and not (k in ADDED_KEYS and (k not in theirs or k not in settings)))
    if diff:
        return MISMATCHED, "made with other settings: " + "; ".join(
            f"{k}={theirs[k]!r} (now {settings.get(k)!r})" if k in theirs else
            f"{k} not recorded (made by an older version; now {settings.get(k)!r})" for k in diff)
    return VALID, ""


def signature_hash(signature: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(signature, sort_keys=True, default=str).encode()).hexdigest()[:16]


class DoneIndex:
    """Append-only log of the records this tool wrote (or fully verified): name, size, mtime, settings hash.

    On resume a record whose file still has the logged size and mtime, for the same settings, counts as
    done without being loaded again; any other file is loaded and checked in full. Each rank appends to its
    own file, a torn last line (a kill mid-append) is ignored, and deleting ``.done/`` only costs time.
    """

    DIR = ".done"

    def __init__(self, out: Path, rank: int, world: int) -> None:
        self.dir = Path(out) / self.DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, tuple[int, int, str]] = {}
        self.shapes: dict[str, str] = {}  # the record's bucket shape (records/shapes.py), when it has one
        self.notes: dict[str, dict[str, Any]] = {}  # what its encode noted (records/reports.py: ENCODE_NOTES)
        for path in sorted(self.dir.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    e = json.loads(line)
                    self.entries[e["name"]] = (int(e["size"]), int(e["mtime_ns"]), str(e["sig"]))
                    if e.get("shape"):
                        self.shapes[e["name"]] = str(e["shape"])
                    if isinstance(e.get("notes"), dict):
                        self.notes[e["name"]] = e["notes"]
                except (ValueError, KeyError, TypeError):
                    continue
        self._file = open(self.dir / f"w{world}-r{rank}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def trusted(self, path: Path, sig: str) -> bool:
        entry = self.entries.get(path.name)
        if entry is None:
            return False
        try:
            st = path.stat()
        except OSError:
            return False
        return entry == (st.st_size, st.st_mtime_ns, sig)

    def add(self, path: Path, sig: str, shape: str | None = None, notes: dict[str, Any] | None = None) -> None:
        st = path.stat()
        entry: dict[str, Any] = {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sig": sig}
        if shape:
            entry["shape"] = shape
        if notes:
            entry["notes"] = notes
        line = json.dumps(entry, ensure_ascii=False)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            self.entries[path.name] = (st.st_size, st.st_mtime_ns, sig)
            for known, value in ((self.shapes, shape), (self.notes, notes)):
                if value:
                    known[path.name] = value
                else:
                    known.pop(path.name, None)

    def close(self) -> None:
        self._file.close()
