"""``revise-prep convert``: records between pickle (.pkl) and safetensors, one file, a folder or a list file."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert records between pickle and safetensors", description=__doc__)
    p.add_argument("input", help="a record, a folder of records or a list file")
    p.add_argument("--to", required=True, choices=("pickle", "safetensors"), help="the format to write")
    p.add_argument("--output-dir", help="where converted records go (default: beside each input)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files that exist already (by default nothing is converted when any target exists)")
    p.set_defaults(func=run)


def _inputs(path: Path) -> list[Path]:
    from revise_prep.records.reports import read_list_paths

    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".pkl", ".safetensors") and not p.name.startswith("."))
    if path.suffix in (".pkl", ".safetensors"):
        return [path]
    return read_list_paths(path)


def run(args: argparse.Namespace) -> int:
    from revise_prep.records.atomic import atomic_write_bytes
    from revise_prep.records.formats import serialize, suffix
    from revise_prep.records.naming import name_budget, writable_name
    from revise_prep.records.reader import DamagedRecordError, load_record
    from revise_prep.records.safe_pickle import UnsafePickleError
    from revise_prep.records.reports import write_list
    from revise_prep.records.shapes import record_shape, write_shape_lists

    source = Path(args.input)
    out_dir = Path(args.output_dir) if args.output_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    written, shapes, failed = [], [], 0
    targets = []
    for path in _inputs(source):
        folder = out_dir or path.parent
        name = writable_name(path.stem, name_budget(folder, suffix(args.to))) + suffix(args.to)
        targets.append((path, folder / name))
    list_out = None
    if source.is_file() and source.suffix not in (".pkl", ".safetensors"):
        list_out = (out_dir or source.parent) / f"{source.stem}.{args.to}.txt"
    taken = [t for t in [*(t for _, t in targets), list_out] if t is not None and os.path.lexists(t)]
    if taken and not args.overwrite:
        log.error("%s exists%s; nothing converted (--overwrite replaces %s)", taken[0],
                  f" (and {len(taken) - 1} more of the {len(targets) + bool(list_out)} targets)" if len(taken) > 1
                  else "", "them" if len(taken) > 1 else "it")
        return 1
    for path, target in targets:
        try:
            record = load_record(path)
            atomic_write_bytes(target, serialize(record, target))
        except (DamagedRecordError, UnsafePickleError) as err:  # the message names the file
            log.error("%s", err)
            failed += 1
            continue
        except Exception as err:  # noqa: BLE001 - report and go on
            log.error("%s: %s", path, err)
            failed += 1
            continue
        written.append(str(target.resolve()))
        shapes.append(record_shape(record))
    if list_out is not None:
        write_list(list_out, written)
        log.info("list file: %s", list_out)
        buckets = write_shape_lists(list_out, zip(written, shapes))  # one per shape beside it, as vae/ar/run write
        if buckets:
            log.info("per-shape lists beside it: %s", ", ".join(f"{s} ({n})" for s, n in buckets.items()))
    log.info("converted %d record(s) to %s, %d failed", len(written), args.to, failed)
    return 1 if failed else 0
