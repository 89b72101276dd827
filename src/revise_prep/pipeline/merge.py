"""Per-rank outcome files and their merge into the final list, failures and summary.

Each rank writes ``.parts/w<world>-r<rank>.jsonl`` when it finishes. Whichever rank finds all parts of
its world present writes the merged reports (atomically; a second merge writes the same content), so
no process group is needed and a crashed rank only delays the merge until it is re-run.
``out`` here is the folder holding the reports: :attr:`OutputLayout.meta` (see ``records/layout.py``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from revise_prep.records.atomic import atomic_write_text
from revise_prep.records.layout import PARTS_DIR
from revise_prep.records.reports import (FAILURES_FILE, NOTES_FILE, SUMMARY_FILE, Outcome, summarize,
                                         write_failures, write_list, write_notes, write_summary)
from revise_prep.records.shapes import write_shape_lists

log = logging.getLogger(__name__)


def part_path(out: Path, rank: int, world: int) -> Path:
    return out / PARTS_DIR / f"w{world}-r{rank}.jsonl"


def write_part(out: Path, rank: int, world: int, outcomes: list[Outcome], stats: dict[str, Any]) -> None:
    path = part_path(out, rank, world)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"stats": stats})] + [json.dumps(o.to_json(), ensure_ascii=False) for o in outcomes]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_part(path: Path) -> tuple[dict[str, Any], list[Outcome]]:
    """A rank's stats and outcomes, as written by :func:`write_part`."""
    lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: a message may hold U+2028
    stats = json.loads(lines[0])["stats"]
    return stats, [Outcome.from_json(json.loads(line)) for line in lines[1:] if line]


_read_part = read_part  # the earlier private name


def try_merge(out: Path, world: int, list_name: str, extra: dict[str, Any] | None = None, *,
              relative_paths: bool = False) -> dict[str, Any] | None:
    """Merge when all ``world`` parts exist; returns the summary, or None while some rank is unfinished.
    The list file holds absolute record paths, or with ``relative_paths`` paths relative to its folder."""
    parts = [part_path(out, r, world) for r in range(world)]
    if not all(p.exists() for p in parts):
        log.info("waiting for other ranks: %d of %d finished", sum(p.exists() for p in parts), world)
        return None
    outcomes: dict[int, Outcome] = {}
    seconds = 0.0
    processed = 0
    reliability: Counter = Counter()
    for path in parts:
        stats, items = read_part(path)
        seconds = max(seconds, float(stats.get("seconds", 0.0)))
        processed += int(stats.get("processed", stats.get("done", 0)))
        reliability.update(stats.get("reliability", {}))
        for o in items:
            if o.index in outcomes:
                raise RuntimeError(f"sample {o.index} reported by two ranks ({path}); refusing to merge")
            outcomes[o.index] = o
    ordered = [outcomes[i] for i in sorted(outcomes)]
    write_list(out / list_name, [o.path for o in ordered if o.ok and o.path], relative=relative_paths)
    buckets = write_shape_lists(out / list_name, [(o.path, o.extra.get("shape")) for o in ordered if o.ok and o.path],
                                relative=relative_paths)
    write_failures(out / FAILURES_FILE, ordered)
    write_notes(out / NOTES_FILE, ordered)
    summary = summarize(ordered, seconds=seconds, processed=processed, world_size=world, list_file=str((out / list_name).absolute()),
                        reliability={k: reliability[k] for k in sorted(reliability)}, **(extra or {}),
                        **({"buckets": buckets} if buckets else {}))
    write_summary(out / SUMMARY_FILE, summary)
    for stale in (out / PARTS_DIR).glob("w*-r*.jsonl"):
        if stale not in parts:
            stale.unlink(missing_ok=True)
    return summary


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
