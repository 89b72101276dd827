"""``revise-prep inspect RECORD_OR_LIST``: what is in a record, or a summary over a list file."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("inspect", help="keys, shapes, dtypes, value ranges, NaN/Inf of a record or a list file",
                       description=__doc__)
    p.add_argument("path", help="a record (.pkl / .safetensors) or a list file (.txt)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--min-bucket-records", type=int, default=64, metavar="N",
                   help="a list's buckets with fewer records are named (as vae/ar/run do)")
    p.set_defaults(func=run)


def _print_record(info: dict) -> None:
    print(info["path"])
    for key, field in info["fields"].items():
        items = field["items"] if field.get("type") == "list" else [field]
        for n, f in enumerate(items):
            name = key if len(items) == 1 and field.get("type") != "list" else f"{key}[{n}]"
            if f.get("type") == "tensor":
                rng = f"min {f['min']:.4g} max {f['max']:.4g} mean {f['mean']:.4g} std {f['std']:.4g}" if "mean" in f else ""
                bad = f"  NaN {f['nan']} Inf {f['inf']}" if f.get("nan") or f.get("inf") else ""
                print(f"  {name:<24} {f['dtype']:<9} {str(f['shape']):<22} {rng}{bad}")
            else:
                print(f"  {name:<24} {f.get('type'):<9} {f.get('value', f.get('keys', ''))!r}"[:160])
    if info["meta"]:
        print("  meta:", json.dumps(info["meta"], default=str)[:2000])
    for problem in info["problems"]:
        print("  PROBLEM:", problem)


def _print_list(info: dict) -> None:
    print(f"{info['list_file']}: {info['records']} records, {info['readable']} readable")
    for keys, n in info["key_sets"].items():
        print(f"  {n:>6} x keys: {keys}")
    for key, hist in info["shapes"].items():
        print(f"  {key}:")
        for shape, n in list(hist.items())[:10]:
            print(f"  {n:>8} x {shape}")
    if info.get("buckets"):
        print("  buckets (frames x height x width):")
        for shape, n in info["buckets"].items():
            print(f"  {n:>8} x {shape}")
    print("  prompt length:", ", ".join(f"{k} {v}" for k, v in info["prompt_length"].items()))
    for warning in info.get("warnings", []):
        print("  WARNING:", warning)
    for path, problems in info["problems"].items():
        print(f"  PROBLEM {path}: {'; '.join(problems)}")
    for path, err in info["unreadable"].items():
        print(f"  UNREADABLE {path}: {err}")


def run(args: argparse.Namespace) -> int:
    from revise_prep.records.inspect import inspect_list, inspect_record
    from revise_prep.records.safe_pickle import UnsafePickleError

    from revise_prep.errors import InputError

    path = Path(args.path)
    if not path.is_file():
        raise InputError(f"{path}: {'a folder; pass a record or a list file' if path.is_dir() else 'no such file'}")
    single = path.suffix in (".pkl", ".safetensors")
    try:
        info = inspect_record(path) if single else inspect_list(path, args.min_bucket_records)
    except (ValueError, UnsafePickleError) as err:  # damaged, refused, or not a list file: a problem found
        log.error("%s", err if single else f"{path}: cannot read it as a list file: {err}")
        return 1
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        (_print_record if single else _print_list)(info)
    bad = info["problems"] or info.get("unreadable")
    return 1 if bad else 0
