"""The narrow interfaces step 1 needs from a video VAE and a text encoder.

A new VAE or text encoder is one new module implementing one of these Protocols (plus a
``load`` classmethod); the pipeline only ever calls ``encode`` and reads the attributes below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

__all__ = ["ModuleAdapter", "VideoEncoder", "TextEncoder", "resolve_dtype", "load_state_dict_file"]


class ModuleAdapter:
    """Mixin for adapters that hold their network in ``self.model``: dtype and device read off its weights."""

    model: torch.nn.Module

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


@runtime_checkable
class VideoEncoder(Protocol):
    """Turns a batch of clips into normalised latents.

    ``encode(videos)``: ``videos`` float [B, 3, T, H, W] in [-1, 1], or the uint8 pixels before step 1's
    normalisation (any device); returns float32
    [B, C, T', H', W'] on the CPU (C = 16 for Wan2.1). ``identifier`` names model and weights so
    outputs can be traced (and caches invalidated) when either changes.
    """

    identifier: str

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    def encode(self, videos: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class TextEncoder(Protocol):
    """Turns prompts into per-token embeddings.

    ``encode(prompts)`` returns one CPU tensor [L_i, dim] per prompt, in the model dtype, where
    L_i is the number of real (unpadded) tokens of prompt i.
    """

    identifier: str

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    def encode(self, prompts: list[str]) -> list[torch.Tensor]: ...


_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def resolve_dtype(name_or_dtype: str | torch.dtype) -> torch.dtype:
    """Map a dtype name ("float32"/"fp32", "bfloat16"/"bf16", "float16"/"fp16") or a dtype to a ``torch.dtype``."""
    if isinstance(name_or_dtype, torch.dtype):
        if name_or_dtype not in set(_DTYPES.values()):
            raise ValueError(f"unsupported dtype {name_or_dtype}; expected one of float32, bfloat16, float16")
        return name_or_dtype
    key = str(name_or_dtype).strip().lower()
    key = key.removeprefix("torch.")
    try:
        return _DTYPES[key]
    except KeyError:
        raise ValueError(
            f"unknown dtype {name_or_dtype!r}; expected one of {', '.join(sorted(_DTYPES))}"
        ) from None


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or ``torch.save`` state dict on the CPU, memory-mapped where possible.

    Only tensors are accepted (``weights_only``): a checkpoint cannot run code. A top-level
    ``{"state_dict": {...}}`` wrapper is unwrapped.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) torch.save format cannot be memory-mapped
        sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return sd


def source_id(source) -> str:
    """How a checkpoint is named in record meta: an absolute path for local files (so a relative and an
    absolute spelling of one checkpoint resume each other's work), the hub id otherwise."""
    from pathlib import Path

    path = Path(source)
    return str(path.resolve()) if path.exists() else str(source)
