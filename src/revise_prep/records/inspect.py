"""Describe records: keys, shapes, dtypes, value ranges and non-finite values; summaries over a list file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from revise_prep.records.reader import load_record
from revise_prep.records.reports import read_list_paths
from revise_prep.records.shapes import record_shape

#: Tensors whose shape is the bucket's: ReViSE's collate stacks them, so one list must hold one shape of each.
LATENT_KEYS = ("latent_feature", "latent_feature_tgt", "latent_features")


def describe_value(value: Any) -> dict[str, Any]:
    """Shape/dtype/range of a tensor (NaN and Inf counted), or type and short repr of anything else."""
    if isinstance(value, torch.Tensor):
        info: dict[str, Any] = {"type": "tensor", "shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
        if value.numel() and (value.is_floating_point() or value.is_complex()):
            v = value.detach().float()
            finite = torch.isfinite(v)
            info["nan"] = int(torch.isnan(v).sum())
            info["inf"] = int(torch.isinf(v).sum())
            if finite.any():
                f = v[finite]
                info.update(min=float(f.min()), max=float(f.max()), mean=float(f.mean()), std=float(f.std()) if f.numel() > 1 else 0.0)
        elif value.numel():
            info.update(min=int(value.min()), max=int(value.max()))
        return info
    if isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
        return {"type": "list", "items": [describe_value(v) for v in value]}
    if isinstance(value, str):
        return {"type": "str", "length": len(value), "value": value if len(value) <= 200 else value[:197] + "..."}
    if isinstance(value, dict):
        return {"type": "dict", "keys": sorted(value)}
    return {"type": type(value).__name__, "value": value if isinstance(value, (int, float, bool, type(None))) else repr(value)[:200]}


def _tensors(info: dict[str, Any]):
    if info.get("type") == "tensor":
        yield info
    for item in info.get("items", []):
        yield from _tensors(item)


def inspect_record(path: str | Path) -> dict[str, Any]:
    """Everything about one record; ``problems`` lists non-finite values and empty tensors."""
    record = load_record(path)
    fields = {key: describe_value(value) for key, value in record.items() if key != "meta"}
    problems = []
    for key, info in fields.items():
        for t in _tensors(info):
            if t.get("nan") or t.get("inf"):
                problems.append(f"{key}: {t.get('nan', 0)} NaN, {t.get('inf', 0)} Inf")
            if 0 in t["shape"]:
                problems.append(f"{key}: empty tensor {t['shape']}")
    return {"path": str(path), "keys": list(record), "fields": fields, "meta": record.get("meta"),
            "problems": problems}


def _shape_key(info: dict[str, Any]) -> str:
    if info.get("type") == "tensor":
        return "x".join(map(str, info["shape"]))
    if info.get("type") == "list":
        return "[" + ", ".join(_shape_key(i) for i in info["items"]) + "]"
    return info.get("type", "?")


def inspect_list(list_file: str | Path, min_bucket_records: int = 64) -> dict[str, Any]:
    """Summary over every record of a list file: counts, shape histograms, prompt lengths, problems, and the
    buckets of fewer than ``min_bucket_records`` records."""
    list_file = Path(list_file)
    shapes: dict[str, Counter] = {}
    prompt_lengths: list[int] = []
    problems: dict[str, list[str]] = {}
    unreadable: dict[str, str] = {}
    keysets: Counter = Counter()
    buckets: Counter = Counter()
    paths = read_list_paths(list_file)
    for path in paths:
        try:
            info = inspect_record(path)
        except Exception as err:  # noqa: BLE001 - report, keep going
            unreadable[str(path)] = f"{type(err).__name__}: {err}"
            continue
        keysets[", ".join(k for k in info["keys"])] += 1
        shape = record_shape(info["meta"])
        if shape:
            buckets[shape] += 1
        for key, field in info["fields"].items():
            if field.get("type") in ("tensor", "list"):
                shapes.setdefault(key, Counter())[_shape_key(field)] += 1
        if "prompt" in info["fields"]:
            prompt_lengths.append(info["fields"]["prompt"]["length"])
        if info["problems"]:
            problems[str(path)] = info["problems"]
    lengths = sorted(prompt_lengths)

    def pct(q: float) -> int | None:
        return lengths[min(len(lengths) - 1, int(q * len(lengths)))] if lengths else None

    mixed = {k: len(shapes[k]) for k in LATENT_KEYS if len(shapes.get(k, ())) > 1}
    warnings = [f"{key} has {n} different shapes in one list: ReViSE's training collate silently replaces the "
                f"odd tensors of a batch by other samples' (train on the per-shape lists <stem>.FxHxW.txt, or "
                f"with revise_prep.records.BucketBatchSampler)" for key, n in mixed.items()]
    small = {shape: n for shape, n in sorted(buckets.items()) if n < min_bucket_records}
    if small:
        warnings.append(f"{len(small)} of {len(buckets)} buckets hold fewer than {min_bucket_records} records "
                        f"({', '.join(f'{s} {n}' for s, n in small.items())}): under drop_last a bucket smaller than "
                        f"a batch gives no batch (--merge-small-buckets gives their samples a bigger one)")
    return {"list_file": str(list_file), "records": len(paths), "readable": len(paths) - len(unreadable),
            "key_sets": dict(keysets), "shapes": {k: dict(v.most_common()) for k, v in shapes.items()},
            "buckets": dict(sorted(buckets.items())), "small_buckets": small, "warnings": warnings,
            "prompt_length": {"min": pct(0), "p50": pct(0.5), "p90": pct(0.9), "max": lengths[-1] if lengths else None},
            "problems": problems, "unreadable": unreadable}
