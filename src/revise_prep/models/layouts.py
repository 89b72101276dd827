"""Where the weights of a VAE / T5 checkpoint are, for every layout a user may hand us.

Layouts: the original Wan release directory, a single original ``.pth`` file, a diffusers
release directory (or one of its component folders) and a hub id of either kind. Detection is
pure path inspection; nothing here loads weights or touches the network (hub ids are resolved
by the loaders, lazily, through ``huggingface_hub``; ``models/hub.py`` asks the hub before that).
:func:`vae_problems` and :func:`t5_problems` go one step further for a local checkpoint, still
without constructing a model: every file the loader will read is there and looks like what it
should be (a config of the right class, a weights file that is not empty, truncated or an HTML page).
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
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
    "weights_problem",
    "vae_problems",
    "t5_problems",
    "HUB_LAYOUT_FILES",
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
_GIVE_TOKENIZER = "the tokenizer (a folder or hub id) must be given separately (tokenizer=)"


class CheckpointNotFoundError(FileNotFoundError):
    """No known checkpoint layout matched the given source; the message says what was looked for.

    ``part`` names what is missing ("vae", "t5" or "tokenizer"), so that a caller can name the option
    that supplies it."""

    def __init__(self, message: str, part: str = "checkpoint") -> None:
        super().__init__(message)
        self.part = part

    def __reduce__(self):
        return (type(self), (str(self), self.part))


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
                f"VAE checkpoint {path}: not a weights file (expected one of {', '.join(_WEIGHT_SUFFIXES)})", "vae"
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
            f"{VAE_SUBFOLDER}/config.json (diffusers release) and config.json (diffusers VAE folder)", "vae"
        )
    if is_hub_id(source):
        return VaeCheckpoint("hub", str(source))
    raise CheckpointNotFoundError(
        f"VAE source {source!s} does not exist: expected a Wan release folder (with {VAE_ORIGINAL_FILE}), "
        f"a .pth file, a diffusers folder (with {VAE_SUBFOLDER}/ or config.json) or a hub id 'org/name'", "vae"
    )


def _explicit_tokenizer(tokenizer: str | Path | None) -> str | None:
    if tokenizer is None:
        return None
    tok = Path(tokenizer).expanduser()
    if tok.is_dir():
        if not _has_tokenizer(tok):
            raise CheckpointNotFoundError(
                f"tokenizer folder {tok} holds none of {', '.join(_TOKENIZER_FILES)}", "tokenizer"
            )
        return str(tok)
    if is_hub_id(tokenizer):
        return str(tokenizer)
    raise CheckpointNotFoundError(f"tokenizer {tokenizer!s} is neither a folder nor a hub id", "tokenizer")


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
                f"T5 checkpoint {path}: not a weights file (expected one of {', '.join(_WEIGHT_SUFFIXES)})", "t5"
            )
        tok = explicit or _sibling_tokenizer(path.parent)
        if tok is None:
            raise CheckpointNotFoundError(
                f"T5 checkpoint {path} has no tokenizer: looked for {path.parent / T5_ORIGINAL_TOKENIZER}; "
                f"{_GIVE_TOKENIZER}", "tokenizer"
            )
        return T5Checkpoint("original", str(path), tokenizer=tok)
    if path.is_dir():
        return _find_t5_in_dir(path, explicit)
    if is_hub_id(source):
        return T5Checkpoint("hub", str(source), tokenizer=explicit)
    raise CheckpointNotFoundError(
        f"T5 source {source!s} does not exist: expected a Wan release folder (with {T5_ORIGINAL_FILE} "
        f"and {T5_ORIGINAL_TOKENIZER}/), a .pth file, a diffusers folder (with {T5_SUBFOLDER}/ and "
        f"{TOKENIZER_SUBFOLDER}/, or config.json) or a hub id 'org/name'", "t5"
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
                f"{path / T5_ORIGINAL_TOKENIZER}; {_GIVE_TOKENIZER}", "tokenizer"
            )
        return T5Checkpoint("original", str(path / T5_ORIGINAL_FILE), tokenizer=tok)
    if (path / T5_SUBFOLDER / "config.json").is_file():
        if explicit is None and not _has_tokenizer(path / TOKENIZER_SUBFOLDER):
            raise CheckpointNotFoundError(
                f"diffusers release {path} has {T5_SUBFOLDER}/ but no tokenizer in "
                f"{path / TOKENIZER_SUBFOLDER}; {_GIVE_TOKENIZER}", "tokenizer"
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
                f"{_GIVE_TOKENIZER}", "tokenizer"
            )
        return T5Checkpoint("diffusers", str(path), tokenizer=tok)
    raise CheckpointNotFoundError(
        f"no T5 encoder found in {path}: looked for {T5_ORIGINAL_FILE} (original Wan release), "
        f"{T5_SUBFOLDER}/config.json (diffusers release) and config.json (transformers model folder)", "t5"
    )


def hub_download(repo_id: str, filename: str) -> str | None:
    """Download ``filename`` of hub repo ``repo_id`` (cached); ``None`` when the repo has no such file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return hf_hub_download(repo_id, filename)
    except EntryNotFoundError:
        return None


# --- what the loaders will read, checked without constructing a model ---------------------------------------

#: Weights files a transformers model folder may hold, in the order ``from_pretrained`` prefers them.
MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
#: The same for a diffusers model folder.
DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
                     "diffusion_pytorch_model.bin", "diffusion_pytorch_model.bin.index.json")
#: Files of a hub repo that make it a known layout (any one of each tuple), per part.
HUB_LAYOUT_FILES = {
    "vae": ((VAE_ORIGINAL_FILE,), (f"{VAE_SUBFOLDER}/config.json",)),
    "t5": ((T5_ORIGINAL_FILE,), (f"{T5_SUBFOLDER}/config.json",)),
}
# torch.save's legacy (non-zip) format starts with pickle protocol 2 and this magic number
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def weights_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be a weights file (missing, empty, truncated, not torch or safetensors), or None.

    Reads the safetensors header, or a zip archive's directory, or the first bytes of a legacy torch file:
    never the tensors, so it costs milliseconds for any size."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        return f"{path}: {err.strerror or err}"
    if size == 0:
        return f"{path}: empty file"
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if path.suffix == ".safetensors":
                if size < 8:
                    return f"{path}: truncated ({size} bytes)"
                (n,) = struct.unpack("<Q", head[:8])
                if n > size - 8 or n > 100_000_000:
                    return f"{path}: not a safetensors file, or truncated (header of {n} bytes in {size})"
                fh.seek(8)
                header = json.loads(fh.read(n))
                end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
                if 8 + n + end > size:
                    return f"{path}: truncated ({size} bytes, its header describes {8 + n + end})"
                return None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        return f"{path}: not a safetensors file ({type(err).__name__}: {err})"
    if path.suffix == ".json":  # a sharded checkpoint's index: every shard it names must be there
        return _index_problem(path)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                if not any(name.endswith("data.pkl") for name in archive.namelist()):
                    return f"{path}: a zip archive, but not one torch.save wrote (no data.pkl)"
        except (zipfile.BadZipFile, OSError) as err:
            return f"{path}: truncated or damaged torch checkpoint ({err})"
        return None
    if head.startswith(_TORCH_LEGACY_MAGIC):
        return None
    shown = head[:24].decode("latin-1").encode("unicode_escape").decode()
    return (f"{path}: not a torch checkpoint ({size} bytes starting {shown!r}; a failed or partial download, or "
            "another kind of file)")


def _index_problem(index: Path) -> str | None:
    try:
        shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return f"{index}: not a sharded-checkpoint index ({type(err).__name__}: {err})"
    for shard in sorted(shards):
        problem = weights_problem(index.parent / shard)
        if problem:
            return problem
    return None


def folder_weights_problem(folder: Path, names: tuple[str, ...] = MODEL_WEIGHTS) -> str | None:
    """Why the weights of a model folder cannot load: none of ``names`` there, or the first one present is bad."""
    for name in names:
        if (folder / name).is_file():
            return weights_problem(folder / name)
    return f"{folder}: no weights file (looked for {', '.join(names)})"


def _config(folder: Path) -> tuple[dict | None, str | None]:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return None, f"{folder / 'config.json'}: not readable JSON ({type(err).__name__}: {err})"
    if not isinstance(data, dict):
        return None, f"{folder / 'config.json'}: not a JSON object"
    return data, None


def _describe(config: dict) -> str:
    what = config.get("_class_name") or ", ".join(map(str, config.get("architectures") or [])) or "?"
    kind = config.get("model_type")
    return f"{what} ({kind})" if kind and kind not in what else what


def vae_problems(ckpt: VaeCheckpoint) -> list[str]:
    """What would stop :class:`WanVAE` loading ``ckpt`` (a local one; a hub id is the hub's to answer)."""
    if ckpt.kind == "original":
        problem = weights_problem(ckpt.location)
        return [problem] if problem else []
    if ckpt.kind != "diffusers":
        return []
    folder = Path(ckpt.location) / (ckpt.subfolder or "")
    config, problem = _config(folder)
    if problem:
        return [problem]
    if config.get("_class_name") != "AutoencoderKLWan":
        what = _describe(config) + (", a VILA checkpoint" if "llava" in _describe(config).lower() else "")
        return [f"{folder / 'config.json'} describes {what}, not a Wan VAE (AutoencoderKLWan)"]
    problem = folder_weights_problem(folder, DIFFUSERS_WEIGHTS)
    return [problem] if problem else []


def t5_problems(ckpt: T5Checkpoint) -> list[str]:
    """What would stop :class:`UMT5TextEncoder` loading ``ckpt``: its weights, then its tokenizer (local parts)."""
    problems = []
    if ckpt.kind == "original":
        problem = weights_problem(ckpt.location)
        problems += [problem] if problem else []
    elif ckpt.kind == "diffusers":
        folder = Path(ckpt.location) / (ckpt.subfolder or "")
        config, problem = _config(folder)
        if problem:
            problems.append(problem)
        elif str(config.get("model_type")) not in ("umt5", "t5"):
            problems.append(f"{folder / 'config.json'} describes {_describe(config)}, not a umT5 encoder")
        else:
            problem = folder_weights_problem(folder)
            problems += [problem] if problem else []
    tok = Path(ckpt.tokenizer) / (ckpt.tokenizer_subfolder or "") if ckpt.tokenizer else None
    if tok is not None and Path(ckpt.tokenizer).exists() and not _has_tokenizer(tok):
        problems.append(f"tokenizer folder {tok} holds none of {', '.join(_TOKENIZER_FILES)}")
    return problems
