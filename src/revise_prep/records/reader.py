"""Training-side view of a prepared dataset: read a list file as the ReViSE training dataset does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from revise_prep.records.formats import deserialize
from revise_prep.records.reports import read_list_paths
from revise_prep.records.safe_pickle import UnsafePickleError


def as_training_sample(record: dict[str, Any]) -> dict[str, Any]:
    """Apply the training dataset's key handling: ``t5_emb`` -> ``text_emb``, a one-element list unwrapped."""
    sample = dict(record)
    if "t5_emb" in sample:
        sample["text_emb"] = sample.pop("t5_emb")
    emb = sample.get("text_emb")
    if isinstance(emb, list) and len(emb) == 1:
        sample["text_emb"] = emb[0]
    return sample


class DamagedRecordError(ValueError):
    """A record file that cannot be read as one (empty, truncated, another kind of file); the message names the
    file and the reason in one line."""


def load_record(path: str | Path) -> dict[str, Any]:
    """Load one record safely (pickle through the restricted unpickler, or safetensors); must be a dict.

    A file that is not a readable record raises :class:`DamagedRecordError` (an unsafe pickle
    :class:`UnsafePickleError`); a missing or unreadable file the ``OSError``."""
    data = Path(path).read_bytes()
    try:
        record = deserialize(data, path)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except Exception as err:  # noqa: BLE001 - pickle, safetensors and JSON each have their own errors
        why = "empty file" if not data else f"truncated or not a record ({type(err).__name__}: {err})"
        raise DamagedRecordError(f"{path}: cannot read this record ({len(data)} bytes): {why}") from None
    if not isinstance(record, dict):
        raise DamagedRecordError(f"{path}: not a record (a {type(record).__name__}, expected a dict)")
    return record


def load_training_sample(path: str | Path) -> dict[str, Any]:
    """One record as the ReViSE training dataset sees it (safe load + its key handling)."""
    return as_training_sample(load_record(path))


def iter_dataset(list_file: str | Path) -> Iterator[dict[str, Any]]:
    """Yield every record of a list file as training sees it (relative paths resolve against the list's folder)."""
    for path in read_list_paths(list_file):
        yield load_training_sample(path)
