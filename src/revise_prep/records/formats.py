"""Record files on disk: pickle (what ReViSE training reads) or safetensors (no code execution at all).

A safetensors record keeps every tensor as a named tensor (a list of tensors ``k`` becomes ``k.0``, ``k.1``,
...) and everything else as JSON in the file's metadata, so the dict round-trips exactly.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from revise_prep.records.safe_pickle import dumps, safe_loads

FORMATS = {"pickle": ".pkl", "safetensors": ".safetensors"}
META_KEY = "revise_prep_record"


def suffix(fmt: str) -> str:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown record format {fmt!r} (choose from {', '.join(FORMATS)})") from None


def to_safetensors(record: dict[str, Any]) -> bytes:
    tensors: dict[str, torch.Tensor] = {}
    skeleton: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, torch.Tensor):
            tensors[key] = value.contiguous()
            skeleton[key] = {"__tensor__": key}
        elif isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
            names = [f"{key}.{i}" for i in range(len(value))]
            tensors.update({n: v.contiguous() for n, v in zip(names, value)})
            skeleton[key] = {"__tensors__": names}
        else:
            skeleton[key] = value
    return st_save(tensors, metadata={META_KEY: json.dumps(skeleton, ensure_ascii=False)})


def _metadata(data: bytes) -> dict[str, str]:
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    return header.get("__metadata__", {})


def from_safetensors(data: bytes) -> dict[str, Any]:
    tensors = st_load(data)
    meta = _metadata(data)
    if META_KEY not in meta:
        raise ValueError("not a revise-prep record (no record metadata in the safetensors header)")
    record = {}
    for key, value in json.loads(meta[META_KEY]).items():
        if isinstance(value, dict) and "__tensor__" in value:
            record[key] = tensors[value["__tensor__"]]
        elif isinstance(value, dict) and "__tensors__" in value:
            record[key] = [tensors[n] for n in value["__tensors__"]]
        else:
            record[key] = value
    return record


def serialize(record: dict[str, Any], path: str | Path) -> bytes:
    """Bytes of ``record`` in the format the file name says (``.safetensors``, else pickle)."""
    return to_safetensors(record) if str(path).endswith(".safetensors") else dumps(record)


def deserialize(data: bytes, path: str | Path) -> Any:
    """Safe load of either format (the restricted unpickler for pickles)."""
    return from_safetensors(data) if str(path).endswith(".safetensors") else safe_loads(data)
