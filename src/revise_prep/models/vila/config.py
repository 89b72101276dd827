"""Read and validate a VILA checkpoint folder (root config + ``llm/``, ``vision_tower/``, ``mm_projector/``).

The original decides what to build from the *folder name* (and crashes on names containing "mpt"); this
module only looks at the files, so any folder name works.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SUBFOLDERS = ("llm", "vision_tower", "mm_projector")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class VilaCheckpoint:
    """Everything the AR model needs to know about a checkpoint, read once from its JSON files."""

    root: Path
    llm_dir: Path
    vision_tower_dir: Path
    mm_projector_dir: Path
    root_config: dict[str, Any]
    llm_config: dict[str, Any]
    vision_config: dict[str, Any]
    projector_config: dict[str, Any]
    image_processor_config: dict[str, Any]

    @property
    def projector_type(self) -> str:
        return str(self.projector_config["mm_projector_type"])

    @property
    def image_aspect_ratio(self) -> str | None:
        return self.root_config.get("image_aspect_ratio")

    @property
    def select_layer(self) -> int:
        return int(self.root_config["mm_vision_select_layer"])

    @property
    def select_feature(self) -> str:
        return str(self.root_config["mm_vision_select_feature"])

    @property
    def mm_use_im_start_end(self) -> bool:
        # LlavaConfig default: False
        return bool(self.root_config.get("mm_use_im_start_end", False) or False)

    @property
    def mm_use_im_patch_token(self) -> bool:
        # LlavaConfig default: True (a missing key means True; an explicit null is falsy, as upstream)
        return bool(self.root_config.get("mm_use_im_patch_token", True))

    @property
    def tokenizer_model_max_length(self) -> int | None:
        """Media-path truncation length: ``llm/config.json`` key, applied only when present."""
        value = self.llm_config.get("tokenizer_model_max_length")
        return None if value is None else int(value)

    @property
    def llm_hidden_size(self) -> int:
        return int(self.llm_config["hidden_size"])

    @property
    def vision_hidden_size(self) -> int:
        return int(self.vision_config["hidden_size"])

    @property
    def image_size(self) -> int:
        """Square input size S: the processor's ``size`` (height) or the tower's ``image_size``."""
        size = self.image_processor_config.get("size")
        if isinstance(size, dict):
            if "height" in size:
                return int(size["height"])
            if "shortest_edge" in size:
                return int(size["shortest_edge"])
        elif isinstance(size, int):
            return size
        return int(self.vision_config["image_size"])

    @property
    def image_mean(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.image_processor_config.get("image_mean", (0.5, 0.5, 0.5)))

    @property
    def image_std(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.image_processor_config.get("image_std", (0.5, 0.5, 0.5)))

    @property
    def rescale_factor(self) -> float:
        return float(self.image_processor_config.get("rescale_factor", 1 / 255))


def vila_identifier(source: str | Path, projector_type: str, dtype: str) -> str:
    """How records name the AR model they were made with (``VilaARModel.identifier``): source, projector, dtype."""
    from revise_prep.models.base import source_id

    return f"vila_ar:{source_id(source)}:{projector_type}:{dtype}"


def vila_files(ckpt: VilaCheckpoint) -> dict[str, Path]:
    """The checkpoint's files by name: root config, LLM (with its tokenizer), vision tower and projector."""
    from revise_prep.models.identity import folder_files

    files = {"config.json": ckpt.root / "config.json"}
    for name, folder in (("llm", ckpt.llm_dir), ("vision_tower", ckpt.vision_tower_dir),
                         ("mm_projector", ckpt.mm_projector_dir)):
        files.update(folder_files(folder, f"{name}/"))
    return files


def vila_identity(ckpt: VilaCheckpoint) -> str:
    """The checkpoint's identity (``models/identity.py``) without loading it: :func:`vila_files`' names and digests."""
    from revise_prep.models.identity import files_identity

    return files_identity("vila", vila_files(ckpt))


def resolve_checkpoint_path(path_or_id: str | Path) -> Path:
    """Local folder as is; an ``org/name`` string that is not a local path is fetched with ``snapshot_download``."""
    path = Path(path_or_id).expanduser()
    if path.exists():
        return path
    text = str(path_or_id)
    if _HUB_ID.match(text):
        from huggingface_hub import snapshot_download  # only needed for hub ids

        logger.info("VILA checkpoint %s not found locally; downloading from the hub", text)
        return Path(snapshot_download(text))
    raise ValueError(f"VILA checkpoint not found: {text!r} is neither an existing folder nor an org/name hub id")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ValueError(f"not a VILA checkpoint: {what} is missing ({path})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a VILA checkpoint: {what} is not valid JSON ({path}: {exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"not a VILA checkpoint: {what} is not a JSON object ({path})")
    return data


def _is_llava(cfg: dict[str, Any]) -> bool:
    names = [str(a) for a in cfg.get("architectures") or []] + [str(cfg.get("model_type") or "")]
    return any("llava" in name.lower() for name in names)


def _subfolder(root: Path, cfg: dict[str, Any], name: str) -> Path:
    """A dict (or absent) ``<name>_cfg`` means ``<root>/<name>``; a string is a path (relative to root)."""
    value = cfg.get(f"{name}_cfg")
    if isinstance(value, str):
        sub = Path(value).expanduser()
        if not sub.is_absolute():
            sub = root / sub
    else:
        sub = root / name
    if not (sub / "config.json").is_file():
        raise ValueError(f"not a VILA checkpoint: {root} has no {name}/ folder with a config.json (looked at {sub})")
    return sub


def read_checkpoint(path_or_id: str | Path) -> VilaCheckpoint:
    """Validate a VILA checkpoint and return its parsed configs; ``ValueError`` says what is missing where."""
    root = resolve_checkpoint_path(path_or_id)
    if not root.is_dir():
        raise ValueError(f"not a VILA checkpoint: {root} is not a folder")
    root_cfg = _read_json(root / "config.json", "config.json")
    if not _is_llava(root_cfg):
        raise ValueError(
            f"not a VILA checkpoint: {root / 'config.json'} has architectures={root_cfg.get('architectures')!r}, "
            f"model_type={root_cfg.get('model_type')!r}; expected 'llava' in one of them"
        )
    llm_dir, tower_dir, proj_dir = (_subfolder(root, root_cfg, name) for name in SUBFOLDERS)
    for key in ("mm_vision_select_layer", "mm_vision_select_feature"):
        if root_cfg.get(key) is None:
            raise ValueError(f"VILA checkpoint {root}: config.json must set {key!r} (upstream has no default)")
    if root_cfg["mm_vision_select_feature"] not in ("patch", "cls_patch"):
        raise ValueError(
            f"VILA checkpoint {root}: unsupported mm_vision_select_feature {root_cfg['mm_vision_select_feature']!r}"
        )
    vision_cfg = _read_json(tower_dir / "config.json", "vision_tower/config.json")
    if not vision_cfg.get("architectures"):
        raise ValueError(f"VILA checkpoint {root}: vision_tower/config.json has no 'architectures'")
    if "siglip" not in str(vision_cfg["architectures"][0]).lower():
        raise ValueError(
            f"VILA checkpoint {root}: vision tower {vision_cfg['architectures'][0]!r} is not supported (SigLIP only)"
        )
    proj_cfg = _read_json(proj_dir / "config.json", "mm_projector/config.json")
    if not proj_cfg.get("mm_projector_type"):
        raise ValueError(f"VILA checkpoint {root}: mm_projector/config.json has no 'mm_projector_type'")
    pre_path = tower_dir / "preprocessor_config.json"
    pre_cfg = _read_json(pre_path, "vision_tower/preprocessor_config.json") if pre_path.is_file() else {}
    if not pre_cfg:
        logger.warning("VILA checkpoint %s: no vision_tower/preprocessor_config.json; using size=image_size, "
                       "mean=std=0.5", root)
    return VilaCheckpoint(
        root=root,
        llm_dir=llm_dir,
        vision_tower_dir=tower_dir,
        mm_projector_dir=proj_dir,
        root_config=root_cfg,
        llm_config=_read_json(llm_dir / "config.json", "llm/config.json"),
        vision_config=vision_cfg,
        projector_config=proj_cfg,
        image_processor_config=pre_cfg,
    )


#: Files that hold a Llama tokenizer in ``llm/`` (any one).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


def checkpoint_problems(path: str | Path) -> list[str]:
    """What would stop :meth:`VilaARModel.load` on a local folder, found from its configs and file headers only:
    the configs (as :func:`read_checkpoint`), then the weights of ``llm/``, ``vision_tower/`` and ``mm_projector/``
    and the tokenizer in ``llm/``. No model is constructed."""
    from revise_prep.models.layouts import folder_weights_problem

    try:
        ckpt = read_checkpoint(path)
    except ValueError as err:
        return [str(err)]
    problems = []
    if not any((ckpt.llm_dir / name).is_file() for name in TOKENIZER_FILES):
        problems.append(f"{ckpt.llm_dir}: no tokenizer (looked for {', '.join(TOKENIZER_FILES)})")
    for folder in (ckpt.llm_dir, ckpt.vision_tower_dir):
        problem = folder_weights_problem(folder)
        problems += [problem] if problem else []
    if ckpt.projector_type != "identity":  # identity has no parameters
        problem = folder_weights_problem(ckpt.mm_projector_dir, ("model.safetensors", "pytorch_model.bin"))
        problems += [problem] if problem else []
    return problems
