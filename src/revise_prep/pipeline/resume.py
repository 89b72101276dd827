"""Decide whether an existing record counts as done: it loads, has the keys, and was made with these settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from revise_prep.records.reader import load_record
from revise_prep.records.schema import META_KEY, missing_keys

log = logging.getLogger(__name__)

VALID, MISSING, INVALID, MISMATCHED = "valid", "missing", "invalid", "mismatched"


def check_record(path: Path, step: str, settings: dict[str, Any]) -> tuple[str, str]:
    """Return (state, detail): valid / missing / invalid (unreadable, truncated) / mismatched (other settings)."""
    if not path.exists():
        return MISSING, ""
    try:
        record = load_record(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file is simply redone
        return INVALID, f"unreadable ({type(err).__name__}: {err})"
    lacking = missing_keys(record, step)
    if lacking:
        return INVALID, f"missing keys {lacking}"
    meta = record.get(META_KEY)
    if not isinstance(meta, dict) or meta.get("step") != step:
        return MISMATCHED, "no revise-prep meta (made by another tool or step)"
    theirs = meta.get("settings", {})
    diff = sorted(k for k in set(settings) | set(theirs) if settings.get(k) != theirs.get(k))
    if diff:
        return MISMATCHED, "made with other settings: " + ", ".join(
            f"{k}={theirs.get(k)!r} (now {settings.get(k)!r})" for k in diff)
    return VALID, ""
