"""Where the weights of a VAE / T5 checkpoint are, for every layout a user may hand us.

Layouts: the original Wan release directory, a single original ``.pth`` file, a diffusers
release directory (or one of its component folders) and a hub id of either kind. Detection is
pure path inspection; nothing here loads weights or touches the network (hub ids are resolved
by the loaders, lazily, through ``huggingface_hub``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "VAE_ORIGINAL_FILE",
    "T5_ORIGINAL_FILE",
    "T5_ORIGINAL_TOKENIZER",
    "CheckpointNotFoundError",
    "VaeCheckpoint",
    "T5Checkpoint",
    "is_hub_id",
    "find_vae",
    "find_t5",
    "hub_download",
]

VAE_ORIGINAL_FILE = "Wan2.1_VAE.pth"
T5_ORIGINAL_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
T5_ORIGINAL_TOKENIZER = "google/umt5-xxl"
VAE_SUBFOLDER = "vae"
T5_SUBFOLDER = "text_encoder"
TOKENIZER_SUBFOLDER = "tokenizer"

_WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class CheckpointNotFoundError(FileNotFoundError):
    """No known checkpoint layout matched the given source; the message says what was looked for."""


@dataclass(frozen=True)
class VaeCheckpoint:
    """Where a VAE lives. ``kind`` "original": ``location`` is a Wan ``.pth`` state dict file;
    "diffusers": ``location`` is a folder or hub id to ``from_pretrained`` with ``subfolder``;
    "hub": a hub id whose layout (original or diffusers) is decided at load time."""

    kind: Literal["original", "diffusers", "hub"]
    location: str
    subfolder: str | None = None


@dataclass(frozen=True)
class T5Checkpoint:
    """Where a T5 encoder and its tokenizer live (same ``kind`` meaning as :class:`VaeCheckpoint`).

    ``tokenizer`` is a folder or hub id for ``AutoTokenizer.from_pretrained`` with
    ``tokenizer_subfolder``; for kind "hub" it may be ``None`` (decided at load time).
    """

    kind: Literal["original", "diffusers", "hub"]
    location: str
    subfolder: str | None = None
    tokenizer: str | None = None
    tokenizer_subfolder: str | None = None


def is_hub_id(source: str | Path) -> bool:
    """True when ``source`` is not an existing local path and looks like ``org/name``."""
    text = str(source)
    if Path(text).expanduser().exists():
        return False
    return bool(_HUB_ID.match(text)) and not text.startswith(".")


def _has_tokenizer(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).is_file() for name in _TOKENIZER_FILES)


def find_vae(source: str | Path) -> VaeCheckpoint:
    """Detect the VAE layout of ``source`` (a release dir, a ``.pth`` file, a diffusers dir or a hub id)."""
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix.lower() not in _WEIGHT_SUFFIXES:
            raise CheckpointNotFoundError(
                f"VAE checkpoint {path}: not a weights file (expected one of {', '.join(_WEIGHT_SUFFIXES)})"
            )
        return VaeCheckpoint("original", str(path))
    if path.is_dir():
        if (path / VAE_ORIGINAL_FILE).is_file():
            return VaeCheckpoint("original", str(path / VAE_ORIGINAL_FILE))
        if (path / VAE_SUBFOLDER / "config.json").is_file():
            return VaeCheckpoint("diffusers", str(path), VAE_SUBFOLDER)
        if (path / "config.json").is_file():
            return VaeCheckpoint("diffusers", str(path))
        raise CheckpointNotFoundError(
            f"no VAE found in {path}: looked for {VAE_ORIGINAL_FILE} (original Wan release), "
            f"{VAE_SUBFOLDER}/config.json (diffusers release) and config.json (diffusers VAE folder)"
        )
    if is_hub_id(source):
        return VaeCheckpoint("hub", str(source))
    raise CheckpointNotFoundError(
        f"VAE source {source!s} does not exist: expected a Wan release folder (with {VAE_ORIGINAL_FILE}), "
        f"a .pth file, a diffusers folder (with {VAE_SUBFOLDER}/ or config.json) or a hub id 'org/name'"
    )


def _explicit_tokenizer(tokenizer: str | Path | None) -> str | None:
    if tokenizer is None:
        return None
    tok = Path(tokenizer).expanduser()
    if tok.is_dir():
        if not _has_tokenizer(tok):
            raise CheckpointNotFoundError(
                f"tokenizer folder {tok} holds none of {', '.join(_TOKENIZER_FILES)}"
            )
        return str(tok)
    if is_hub_id(tokenizer):
        return str(tokenizer)
    raise CheckpointNotFoundError(f"tokenizer {tokenizer!s} is neither a folder nor a hub id")


def find_t5(source: str | Path, tokenizer: str | Path | None = None) -> T5Checkpoint:
    """Detect the T5 layout of ``source``; ``tokenizer`` (folder or hub id) overrides the layout's own.

    A single ``.pth`` file takes its tokenizer from ``tokenizer`` or, failing that, from a
    ``google/umt5-xxl/`` folder beside it.
    """
    explicit = _explicit_tokenizer(tokenizer)
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix.lower() not in _WEIGHT_SUFFIXES:
            raise CheckpointNotFoundError(
                f"T5 checkpoint {path}: not a weights file (expected one of {', '.join(_WEIGHT_SUFFIXES)})"
            )
        tok = explicit or _sibling_tokenizer(path.parent)
        if tok is None:
            raise CheckpointNotFoundError(
                f"T5 checkpoint {path} has no tokenizer: looked for {path.parent / T5_ORIGINAL_TOKENIZER}; "
                "pass tokenizer=<folder or hub id>"
            )
        return T5Checkpoint("original", str(path), tokenizer=tok)
    if path.is_dir():
        return _find_t5_in_dir(path, explicit)
    if is_hub_id(source):
        return T5Checkpoint("hub", str(source), tokenizer=explicit)
    raise CheckpointNotFoundError(
        f"T5 source {source!s} does not exist: expected a Wan release folder (with {T5_ORIGINAL_FILE} "
        f"and {T5_ORIGINAL_TOKENIZER}/), a .pth file, a diffusers folder (with {T5_SUBFOLDER}/ and "
        f"{TOKENIZER_SUBFOLDER}/, or config.json) or a hub id 'org/name'"
    )


def _sibling_tokenizer(folder: Path) -> str | None:
    tok = folder / T5_ORIGINAL_TOKENIZER
    return str(tok) if _has_tokenizer(tok) else None


def _find_t5_in_dir(path: Path, explicit: str | None) -> T5Checkpoint:
    if (path / T5_ORIGINAL_FILE).is_file():
        tok = explicit or _sibling_tokenizer(path)
        if tok is None:
            raise CheckpointNotFoundError(
                f"Wan release {path} has {T5_ORIGINAL_FILE} but no tokenizer in "
                f"{path / T5_ORIGINAL_TOKENIZER}; pass tokenizer=<folder or hub id>"
            )
        return T5Checkpoint("original", str(path / T5_ORIGINAL_FILE), tokenizer=tok)
    if (path / T5_SUBFOLDER / "config.json").is_file():
        if explicit is None and not _has_tokenizer(path / TOKENIZER_SUBFOLDER):
            raise CheckpointNotFoundError(
                f"diffusers release {path} has {T5_SUBFOLDER}/ but no tokenizer in "
                f"{path / TOKENIZER_SUBFOLDER}; pass tokenizer=<folder or hub id>"
            )
        if explicit is not None:
            return T5Checkpoint("diffusers", str(path), T5_SUBFOLDER, explicit)
        return T5Checkpoint("diffusers", str(path), T5_SUBFOLDER, str(path), TOKENIZER_SUBFOLDER)
    if (path / "config.json").is_file():
        tok = explicit
        if tok is None:
            for candidate in (path, path.parent / TOKENIZER_SUBFOLDER):
                if _has_tokenizer(candidate):
                    tok = str(candidate)
                    break
        if tok is None:
            raise CheckpointNotFoundError(
                f"T5 folder {path} has no tokenizer: looked in {path} and {path.parent / TOKENIZER_SUBFOLDER}; "
                "pass tokenizer=<folder or hub id>"
            )
        return T5Checkpoint("diffusers", str(path), tokenizer=tok)
    raise CheckpointNotFoundError(
        f"no T5 encoder found in {path}: looked for {T5_ORIGINAL_FILE} (original Wan release), "
        f"{T5_SUBFOLDER}/config.json (diffusers release) and config.json (transformers model folder)"
    )


def hub_download(repo_id: str, filename: str) -> str | None:
    """Download ``filename`` of hub repo ``repo_id`` (cached); ``None`` when the repo has no such file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return hf_hub_download(repo_id, filename)
    except EntryNotFoundError:
        return None
