"""A checkpoint's identity without loading it: its layout, its files, their sizes and a hash of a bounded part of each.

Resume signatures hold it (``pipeline/step1.py``, ``step2.py``, ``onepass.py``), so records are redone when the
weights change, even under the same path, and no model is built to learn it. A file of at most
:data:`WINDOWS` x :data:`WINDOW` bytes (4 MiB) is hashed whole; a larger one at :data:`WINDOWS` windows spread
evenly from its first byte to its last (4 MiB read for the 11 GB umT5-xxl). A change that touches only bytes
between the windows goes unseen: a fine-tune that rewrites every tensor does not, one that edits a single small
tensor of a large file may. A hub id that is not on disk is named by its id.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

__all__ = ["WINDOW", "WINDOWS", "checkpoint_files", "file_digest", "files_identity", "folder_files", "hub_identity", "weight_elements"]

WINDOW = 64 * 1024  # bytes per hashed window
WINDOWS = 64  # windows per file: first and last included, evenly spaced between


def file_digest(path: str | Path) -> str:
    """``<size>:<hash>`` of one file: the whole file up to ``WINDOWS * WINDOW`` bytes, else its windows."""
    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= WINDOWS * WINDOW:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        else:
            step = (size - WINDOW) / (WINDOWS - 1)
            for i in range(WINDOWS):
                f.seek(round(i * step))
                h.update(f.read(WINDOW))
    return f"{size}:{h.hexdigest()}"


def folder_files(folder: str | Path, prefix: str = "") -> dict[str, Path]:
    """The regular files directly in ``folder`` (links followed, hidden files left out), named ``prefix + name``."""
    folder = Path(folder)
    return {prefix + p.name: p for p in sorted(folder.iterdir()) if not p.name.startswith(".") and p.is_file()}


def files_identity(kind: str, files: dict[str, Path]) -> str:
    """``<kind>:<hash>`` over the names and digests of ``files`` (name -> path)."""
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(files):
        h.update(f"{name}\0{file_digest(files[name])}\n".encode())
    return f"{kind}:{h.hexdigest()}"


def checkpoint_files(ckpt, prefix: str = "") -> dict[str, Path] | None:
    """The weight files of a located checkpoint (``layouts.VaeCheckpoint`` / ``T5Checkpoint``) by name: the file of
    an "original" one, the files of a "diffusers" folder (``prefix`` + name); None for a hub id not on disk."""
    if ckpt.kind == "hub":
        return None
    if ckpt.kind == "original":
        return {Path(ckpt.location).name: Path(ckpt.location)}
    return folder_files(Path(ckpt.location) / (ckpt.subfolder or ""), prefix)


def hub_identity(repo_id: str) -> str:
    """A hub id not on disk: named by its id (planning reads no network; the loader fetches the files later)."""
    return f"hub:{repo_id}"


def weight_elements(files: dict[str, Path]) -> int | None:
    """How many tensor elements the weight files among ``files`` hold, read from their headers (safetensors) or
    their pickled index (torch zip files, memory-mapped: no tensor is read); None when a file cannot tell."""
    total = 0
    for path in files.values():
        suffix = path.suffix.lower()
        try:
            if suffix == ".safetensors":
                with open(path, "rb") as f:
                    (n,) = struct.unpack("<Q", f.read(8))
                    header = json.loads(f.read(n))
                total += sum(_numel(v["shape"]) for k, v in header.items() if k != "__metadata__")
            elif suffix in (".pth", ".pt", ".ckpt", ".bin"):
                import torch

                state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
                state = state.get("state_dict", state) if isinstance(state, dict) else state
                total += sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor))
        except Exception:  # noqa: BLE001 - legacy or odd formats: the estimate falls back to the defaults
            return None
    return total


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
