"""Where a run stands, read from an output folder's journals, locks and reports (``revise-prep status``).

Read-only and safe while a run writes: the journals are append-only (a torn last line is ignored), the reports
are replaced atomically, and a rank's lock is only asked for, shared and without waiting, for an instant (a run
starting at that instant waits for it; ``pipeline/locks.py``). What each file says:

* ``config.json``: the step, the settings and the number of ranks (1 for ``--engine ray``: its driver).
* ``.inflight/w<world>-r<rank>.jsonl`` (``pipeline/inflight.py``): each run of a rank is a section: ``run`` (pid,
  start time, host), ``plan`` (its share, to do, resumed, failed before any work, the time), ``start``/``end`` per
  sample (the end with the reason when it was skipped or failed), ``stop`` when it ended without dying.
* ``.locks/w<world>-r<rank>.lock``: held while the rank runs (the kernel drops it when the holder dies); holds
  ``pid host``.
* ``.parts/w<world>-r<rank>.jsonl``: a finished rank's outcomes; ``.done/``: the records written or verified.
* ``summary.json`` (with the list file and ``failures.jsonl``): written when the last rank finished.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from revise_prep.errors import InputError
from revise_prep.records.layout import (CONFIG_FILE, DONE_DIR, FAILURES_FILE, INFLIGHT_DIR, LOCK_DIR, NOTES_FILE,
                                        PARTS_DIR, SIDECAR_SUFFIX, SUMMARY_FILE, absolute, sidecar_of)

#: The list file each step writes (``pipeline/step1.py``, ``step2.py``, ``onepass.py``), when no summary says it.
LIST_NAMES = {"vae": "vae_features.txt", "ar": "ar_features.txt", "run": "train_list.txt"}
STATUSES = ("done", "resumed", "skipped", "failed")
_RANK_FILE = re.compile(r"^w(\d+)-r(\d+)\.")


@dataclass
class Section:
    """One run of one rank, as its in-flight journal tells it."""

    pid: int | None = None
    started: float | None = None  # the run entry's time
    host: str | None = None
    plan: dict[str, Any] = field(default_factory=dict)
    planned_at: float | None = None
    ended: int = 0  # samples taken up and finished
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # skipped/failed -> reason -> count
    open: list[str] = field(default_factory=list)  # started, not ended: in flight (or when it died)
    stopped: bool = False


@dataclass
class RankStatus:
    rank: int
    world: int
    state: str  # running / finished / stopped / died / not started
    holder: str | None = None  # "pid 12 on node7" while the lock is held
    pid: int | None = None
    host: str | None = None
    started: float | None = None
    total: int | None = None  # this rank's share of the samples
    todo: int | None = None  # what this run had to do after the resume check
    processed: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # by status
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)  # skipped/failed -> reason -> count
    in_flight: list[str] = field(default_factory=list)
    rate: float | None = None  # samples/s of this run so far (running ranks)
    earlier_deaths: int = 0  # earlier runs of this rank that died


def _is_meta(folder: Path) -> bool:
    """A reports folder: ``config.json`` (rank 0 writes it) or a rank's bookkeeping."""
    return any((folder / name).exists() for name in (CONFIG_FILE, INFLIGHT_DIR, PARTS_DIR))


def find_meta(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(records folder, reports folder) of an output folder, given either of them."""
    path = absolute(path)
    if path.name.endswith(SIDECAR_SUFFIX) and _is_meta(path):
        return path.with_name(path.name.removesuffix(SIDECAR_SUFFIX)), path
    if _is_meta(path):
        return path, path
    if path.parent != path and _is_meta(sidecar_of(path)):
        return path, sidecar_of(path)
    if not path.exists():
        raise InputError(f"{path}: no such folder")
    raise InputError(f"{path}: not an output folder of revise-prep (no {CONFIG_FILE} or {INFLIGHT_DIR}/ in it or in "
                     f"{path.name}{SIDECAR_SUFFIX}/ beside it; a run writes them once its models are loaded)")


def current_world(meta: Path, config: dict) -> int:
    """The number of ranks of the newest run: from its newest journal, lock or report (``w<world>-r<rank>``),
    else ``config.json``."""
    newest, world = -1.0, int(config.get("world_size") or 1)
    for folder in (INFLIGHT_DIR, LOCK_DIR, PARTS_DIR):
        for path in (meta / folder).glob("w*-r*.*"):
            match = _RANK_FILE.match(path.name)
            when = _mtime(path)
            if match and when is not None and when > newest:
                newest, world = when, int(match.group(1))
    return world


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _lines(path: Path) -> list[dict]:
    """The JSON objects of a JSON Lines file written while we read it: a torn or damaged line is skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.split("\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def read_sections(journal: Path) -> list[Section]:
    """Every run section of one rank's in-flight journal, oldest first (a run compacts the ones before it into
    its ``carried`` counts: :func:`earlier_deaths`)."""
    sections: list[Section] = []
    current: Section | None = None
    started: dict[str, None] = {}
    for entry in _lines(journal):
        if "carried" in entry:
            continue
        if "run" in entry:
            if current is not None:
                current.open = list(started)
            pid, _, when = str(entry["run"]).partition("@")
            current = Section(pid=int(pid) if pid.isdigit() else None,
                              started=float(when) if when.replace(".", "", 1).isdigit() else None,
                              host=entry.get("host"))
            sections.append(current)
            started = {}
        elif current is None:
            continue
        elif "plan" in entry:
            current.plan = dict(entry["plan"]) if isinstance(entry["plan"], dict) else {}
            current.planned_at = entry.get("t")
        elif "start" in entry:
            started[str(entry["start"])] = None
        elif "end" in entry:
            started.pop(str(entry["end"]), None)
            current.ended += 1
            if entry.get("status"):
                by = current.outcomes.setdefault(str(entry["status"]), {})
                by[str(entry.get("reason"))] = by.get(str(entry.get("reason")), 0) + 1
        elif entry.get("stop"):
            current.stopped = True
    if current is not None:
        current.open = list(started)
    return sections


def earlier_deaths(journal: Path) -> int:
    """Runs of this rank that died before its last one: those compacted into ``carried``, and sections since."""
    carried = sum(int(e.get("runs_died", 0)) for e in _lines(journal) if "carried" in e)
    return carried + sum(1 for s in read_sections(journal)[:-1] if not s.stopped)


def lock_holder(path: Path) -> str | None:
    """``"pid 12 on node7"`` when a live process holds the lock file, else None (no file, or a holder gone).

    Asks for a shared lock without waiting and drops it at once: it is refused exactly while a run holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            content = os.read(fd, 256).decode("utf-8", "replace").strip()
            pid, _, host = content.partition(" ")
            return f"pid {pid or '?'}" + (f" on {host}" if host else "")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_part(path: Path) -> tuple[dict[str, Any], list[dict]] | None:
    entries = _lines(path)
    if not entries or "stats" not in entries[0]:
        return None
    return entries[0]["stats"], entries[1:]


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _rank_status(meta: Path, rank: int, world: int, now: float) -> RankStatus:
    name = f"w{world}-r{rank}"
    sections = read_sections(meta / INFLIGHT_DIR / f"{name}.jsonl")
    holder = lock_holder(meta / LOCK_DIR / f"{name}.lock")
    if not sections:
        return RankStatus(rank, world, "running" if holder else "not started", holder=holder)
    last = sections[-1]
    part_time = _mtime(meta / PARTS_DIR / f"{name}.jsonl")
    finished = part_time is not None and last.started is not None and part_time >= last.started - 1
    state = ("running" if holder else "finished" if finished and last.stopped else "stopped" if last.stopped
             else "died")
    st = RankStatus(rank, world, state, holder=holder, pid=last.pid, host=last.host, started=last.started,
                    total=last.plan.get("total"), todo=last.plan.get("todo"), processed=last.ended,
                    in_flight=last.open if state in ("running", "died") else [],
                    earlier_deaths=earlier_deaths(meta / INFLIGHT_DIR / f"{name}.jsonl"))
    part = _read_part(meta / PARTS_DIR / f"{name}.jsonl") if finished else None
    if part is not None:  # the rank's own report: exact
        stats, outcomes = part
        st.counts = dict(Counter(str(o.get("status")) for o in outcomes))
        for o in outcomes:
            if o.get("status") in ("skipped", "failed"):
                by = st.reasons.setdefault(o["status"], {})
                by[str(o.get("reason"))] = by.get(str(o.get("reason")), 0) + 1
        st.processed = int(stats.get("processed", st.processed))
        seconds = float(stats.get("seconds") or 0)
        st.rate = st.processed / seconds if seconds > 0 else None
        return st
    reasons: dict[str, dict[str, int]] = {}
    for source in (last.plan.get("prefailed") or {}, last.outcomes):
        for status, by in source.items():
            for reason, n in by.items():
                reasons.setdefault(status, {})[reason] = reasons.get(status, {}).get(reason, 0) + int(n)
    lost = sum(n for by in last.outcomes.values() for n in by.values())
    st.reasons = reasons
    st.counts = {"done": last.ended - lost, "resumed": int(last.plan.get("resumed", 0)),
                 **{status: sum(by.values()) for status, by in reasons.items()}}
    since = last.planned_at or last.started
    if state == "running" and since and now > since:
        st.rate = last.ended / (now - since)
    return st


def count_lines(path: Path) -> int | None:
    """Non-blank lines of a list or report file (None when it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return None


def _records_indexed(meta: Path) -> int:
    """Distinct records in the done index under its newest settings hash (written or verified, any rank)."""
    entries = [e for path in sorted((meta / DONE_DIR).glob("*.jsonl")) for e in _lines(path) if "name" in e]
    if not entries:
        return 0
    newest = max(entries, key=lambda e: int(e.get("mtime_ns", 0)))["sig"]
    return len({e["name"] for e in entries if e.get("sig") == newest})


def folder_status(path: str | os.PathLike[str], now: float | None = None) -> dict[str, Any]:
    """Everything ``revise-prep status`` shows, as a JSON-able dict (``--json`` prints it as is)."""
    now = time.time() if now is None else now
    records, meta = find_meta(path)
    config = _json(meta / CONFIG_FILE) or {}
    step = str(config.get("step", "?"))
    world = current_world(meta, config)
    summary = _json(meta / SUMMARY_FILE)
    ranks = [_rank_status(meta, r, world, now) for r in range(world)]
    latest_start = max((r.started for r in ranks if r.started), default=None)
    summary_time = _mtime(meta / SUMMARY_FILE)
    finished = (summary is not None and all(r.state in ("finished", "not started") for r in ranks)
                and (latest_start is None or (summary_time or 0) >= latest_start - 1))
    states = Counter(r.state for r in ranks)
    state = ("running" if states["running"] else "finished" if finished else "died" if states["died"]
             else "stopped" if states["stopped"] else "partly finished" if states["finished"] else "not started")
    counts: Counter = Counter()
    reasons: dict[str, Counter] = {}
    if finished:
        counts.update(summary.get("by_status", {}))
        for status, by in (summary.get("reasons_by_status") or {}).items():
            reasons[status] = Counter(by)
        rate = summary.get("samples_per_second")
    else:
        for r in ranks:
            counts.update(r.counts)
            for status, by in r.reasons.items():
                reasons.setdefault(status, Counter()).update(by)
        rates = [r.rate for r in ranks if r.state == "running" and r.rate is not None]
        rate = sum(rates) if rates else None
    total = sum(r.total or 0 for r in ranks) if any(r.total is not None for r in ranks) else None
    if finished:
        total = summary.get("samples", total)
    left = sum(max(0, (r.todo or 0) - r.processed) for r in ranks if r.state != "finished" and r.todo is not None)
    running_left = sum(max(0, (r.todo or 0) - r.processed) for r in ranks if r.state == "running" and r.todo)
    eta = running_left / rate if state == "running" and rate else None  # a dead rank's share waits for a re-run
    list_file = Path(summary["list_file"]) if summary and summary.get("list_file") else \
        meta / LIST_NAMES.get(step, "list.txt")
    files = {"list_file": list_file, "failures": meta / FAILURES_FILE, "notes": meta / NOTES_FILE,
             "summary": meta / SUMMARY_FILE, "config": meta / CONFIG_FILE}
    return {
        "folder": str(records), "reports": str(meta), "step": step, "world_size": world,
        "engine": ((config.get("run") or config.get("settings") or {}).get("engine") or {}).get("name", "local"),
        "state": state, "samples": total,
        "counts": {k: int(counts.get(k, 0)) for k in STATUSES},
        "reasons": {k: dict(v.most_common()) for k, v in sorted(reasons.items())},
        "to_do": left, "samples_per_second": round(rate, 4) if rate else None,
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "records_indexed": _records_indexed(meta),
        "ranks": [asdict(r) for r in ranks],
        "files": {k: {"path": str(p), "exists": p.exists(),
                      **({"lines": count_lines(p)} if p.suffix in (".txt", ".jsonl") else {})}
                  for k, p in files.items()},
        "checked_at": now,
    }
