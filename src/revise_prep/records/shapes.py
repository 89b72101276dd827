"""Shape-homogeneous list files: one ``<list stem>.<F>x<H>x<W>.txt`` per bucket beside the full list.

ReViSE's training collate stacks tensors by key and, when shapes differ inside a batch, silently puts
copies of other samples' tensors in their place; a list file holding one shape only is safe to train on.
A record's shape is the bucket its meta names (frames x height x width of the pixels the VAE saw): only
records made with ``--buckets`` / ``--frame-buckets`` have one, so runs without them write no extra files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from revise_prep.records.reports import write_list

__all__ = ["SHAPE_RE", "record_shape", "shape_list_path", "shape_of_list", "sibling_shape_lists",
           "write_shape_lists"]

SHAPE_RE = re.compile(r"^(?P<stem>.+)\.(?P<shape>\d+x\d+x\d+)\.txt$")


def record_shape(meta: Any) -> str | None:
    """``"FxHxW"`` of a record's bucket from its ``meta`` (or the record holding it); None without buckets."""
    if isinstance(meta, Mapping) and "meta" in meta:
        meta = meta["meta"]
    bucket = meta.get("bucket") if isinstance(meta, Mapping) else None
    if not isinstance(bucket, Mapping):
        return None
    try:
        h, w = bucket["size"]
        return f"{int(bucket['frame_num'])}x{int(h)}x{int(w)}"
    except (KeyError, TypeError, ValueError):
        return None


def shape_list_path(list_file: str | Path, shape: str) -> Path:
    """``out/train_list.txt`` + ``"81x480x832"`` -> ``out/train_list.81x480x832.txt``."""
    list_file = Path(list_file)
    return list_file.with_name(f"{list_file.stem}.{shape}{list_file.suffix}")


def shape_of_list(list_file: str | Path) -> str | None:
    """The shape a per-shape list file's name carries, else None."""
    m = SHAPE_RE.match(Path(list_file).name)
    return m.group("shape") if m else None


def sibling_shape_lists(list_file: str | Path) -> dict[str, Path]:
    """The per-shape lists written beside a full list file, by shape."""
    list_file = Path(list_file)
    found = {}
    for path in sorted(list_file.parent.glob(f"{list_file.stem}.*{list_file.suffix}")):
        m = SHAPE_RE.match(path.name)
        if m and m.group("stem") == list_file.stem:
            found[m.group("shape")] = path
    return found


def write_shape_lists(list_file: str | Path, entries: Iterable[tuple[str, str | None]], *,
                      relative: bool = False) -> dict[str, int]:
    """Write one list per shape from (record path, shape) pairs in list order; return the count per shape.

    Per-shape lists of earlier runs whose shape no record has any more are removed (they would name
    records made with other settings). Records without a shape appear only in the full list.
    """
    by_shape: dict[str, list[str]] = {}
    for path, shape in entries:
        if shape:
            by_shape.setdefault(shape, []).append(path)
    for shape, stale in sibling_shape_lists(list_file).items():
        if shape not in by_shape:
            stale.unlink(missing_ok=True)
    for shape, paths in by_shape.items():
        write_list(shape_list_path(list_file, shape), paths, relative=relative)  # lines as in the full list
    return {shape: len(paths) for shape, paths in sorted(by_shape.items())}
