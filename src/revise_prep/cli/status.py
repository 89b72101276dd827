"""``revise-prep status OUTPUT_DIR``: where a run stands (done / skipped / failed by reason, samples/s, ETA, which
ranks hold the folder now, whether an earlier run died and on which sample, where the reports are).

Reads only (``records/status.py``); safe while a run writes. ``--json`` for scripts, ``--watch`` to refresh.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from typing import Any

from revise_prep.pipeline.progress import duration_text


def register(sub) -> None:
    p = sub.add_parser("status", help="where a run stands: counts by reason, samples/s, ETA, live ranks, reports",
                       description=__doc__)
    p.add_argument("output_dir", metavar="OUTPUT_DIR",
                   help="the run's output folder (or, for `vae`, its <folder>.revise-prep sidecar)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", nargs="?", type=float, const=10.0, default=None, metavar="SECONDS",
                   help="refresh every SECONDS (default 10) until Ctrl-C")
    p.set_defaults(func=run)


def _clock(t: float | None) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "?"


def _names(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def format_status(s: dict[str, Any]) -> str:
    """The text ``revise-prep status`` prints."""
    ranks = s["ranks"]
    lines = [f"{s['folder']}: {s['step']}, {s['world_size']} rank{'s' if s['world_size'] > 1 else ''} "
             f"({s['engine']} engine): {s['state']}"]
    c, reasons = s["counts"], s["reasons"]
    parts = []
    for status in ("done", "resumed", "skipped", "failed"):
        why = ", ".join(f"{k} {v}" for k, v in reasons.get(status, {}).items())
        if c[status] or status == "done":
            parts.append(f"{status} {c[status]}" + (f" ({why})" if why else ""))
    total = f" of {s['samples']}" if s["samples"] is not None else ""
    lines.append(f"samples{total}: " + ", ".join(parts) + (f", to do {s['to_do']}" if s["state"] != "finished" else ""))
    if s["samples_per_second"]:
        eta = f", ETA {duration_text(s['eta_seconds'])}" if s["eta_seconds"] is not None else ""
        lines.append(f"rate: {s['samples_per_second']:.3g} samples/s{eta}")
    for r in ranks:
        who = f"rank {r['rank']}" if s["world_size"] > 1 else "run"
        if r["state"] == "running":
            text = (f"{who}: running ({r['holder']}), since {_clock(r['started'])}, {r['processed']} of "
                    f"{r['todo']} processed")
            if r["in_flight"]:
                text += f", now on {_names(r['in_flight'])}"
        elif r["state"] == "died":
            where = f" on {r['host']}" if r["host"] else ""
            text = (f"{who}: DIED (pid {r['pid']}{where}, started {_clock(r['started'])}) after {r['processed']} "
                    f"of {r['todo']}")
            text += f"; it was on {_names(r['in_flight'])}" if r["in_flight"] else ""
            text += "; re-run the same command to resume"
        elif r["state"] == "stopped":
            text = f"{who}: stopped (interrupted or could not write) after {r['processed']} of {r['todo']}"
        elif r["state"] == "not started":
            text = f"{who}: not started (or still loading its models)"
        else:
            text = f"{who}: finished"
        if r["earlier_deaths"]:
            text += f" [{r['earlier_deaths']} earlier run(s) died]"
        lines.append(text)
    for key, label in (("list_file", "list file"), ("failures", "failures"), ("summary", "summary"),
                       ("notes", "notes")):
        f = s["files"][key]
        if f["exists"]:
            n = f" ({f['lines']} line{'' if f['lines'] == 1 else 's'})" if f.get("lines") is not None else ""
            lines.append(f"{label}: {f['path']}{n}")
        elif key in ("list_file", "summary"):
            lines.append(f"{label}: {f['path']} (written when the last rank finishes)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from revise_prep.records.status import folder_status

    try:
        while True:
            status = folder_status(args.output_dir)
            text = json.dumps(status, indent=2) if args.json else format_status(status)
            if args.watch is not None and sys.stdout.isatty():
                sys.stdout.write("\033[H\033[J")  # clear the screen, as watch(1) does
            print(text, flush=True)
            if args.watch is None:
                return 0
            time.sleep(max(args.watch, 0.5))
    except KeyboardInterrupt:  # the way to end --watch
        return 0
