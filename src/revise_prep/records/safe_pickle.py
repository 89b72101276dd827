"""Pickle records, and a restricted unpickler that only admits the types our records contain.

Plain ``pickle.load`` runs whatever a file names; a dataset downloaded from elsewhere must not be
able to do that. We admit builtin containers/scalars and torch tensors (as ``pickle`` stores them:
``_rebuild_tensor_v2`` plus storage bytes, which we load with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch


class UnsafePickleError(pickle.UnpicklingError):
    """The file names a global outside the allow-list; nothing was executed."""


def _load_storage(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except the allow-list above."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {module}.{name}: records only contain dicts, lists, strings, "
                "numbers and tensors") from None


def safe_loads(data: bytes) -> Any:
    return RestrictedUnpickler(io.BytesIO(data)).load()


def safe_load(path: str | Path) -> Any:
    """Load a pickle file through :class:`RestrictedUnpickler`; errors name the file."""
    path = Path(path)
    try:
        return safe_loads(path.read_bytes())
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None


def dumps(obj: Any) -> bytes:
    """Serialise a record the way training code expects (plain pickle, readable by ``pickle.load``)."""
    return pickle.dumps(obj, protocol=4)
