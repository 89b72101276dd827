"""The run's reports: the list file training reads, ``failures.jsonl``, ``notes.jsonl`` and ``summary.json``."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from revise_prep.records.atomic import atomic_write_text
from revise_prep.records.layout import FAILURES_FILE, NOTES_FILE, SUMMARY_FILE  # noqa: F401 - re-exported

#: Characters that end a line for ``str.splitlines`` (a path holding one would split a list file).
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


@dataclass
class Outcome:
    """What happened to one sample: ``status`` is done / resumed / skipped / failed."""

    index: int
    name: str | None
    status: str
    reason: str | None = None
    message: str | None = None
    source: str | None = None
    target: str | None = None
    path: str | None = None  # the record written (done / resumed)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "resumed")

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v not in (None, {})}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Outcome":
        return cls(**{"name": None, **data})


def write_list(path: str | Path, record_paths: list[str], *, relative: bool = False) -> None:
    """One record path a line, as the ReViSE training dataset reads it: absolute (it opens each line as given,
    from its own working folder), or with ``relative`` relative to the list file's folder."""
    folder = os.path.abspath(Path(path).parent)
    lines = []
    for p in record_paths:
        p = os.path.abspath(p)
        if any(c in p for c in LINE_BREAKS):
            raise ValueError(f"{p!r}: a record path with a line break cannot go into a list file")
        lines.append(os.path.relpath(p, folder) if relative else p)
    atomic_write_text(path, "".join(p + "\n" for p in lines))


def read_list(path: str | Path) -> list[str]:
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]


def read_list_paths(list_file: str | Path) -> list[Path]:
    """The record paths of a list file. A relative line is taken relative to the list's own folder (how we
    write them); if nothing is there but the line exists from the current directory, that is used instead
    (lists written by earlier versions, relative to the folder they ran in)."""
    return [resolve_list_line(line, list_file) for line in read_list(list_file)]


def resolve_list_line(line: str, list_file: str | Path) -> Path:
    """One list line as a path: a relative line against the list's folder, else (earlier versions' lists,
    relative to the folder they ran in) against the current directory when only that exists."""
    p = Path(line)
    if not p.is_absolute():
        beside = Path(list_file).parent / p
        p = p if not beside.exists() and p.exists() else beside
    return p


def write_failures(path: str | Path, outcomes: list[Outcome]) -> None:
    lines = [json.dumps(o.to_json(), ensure_ascii=False) for o in outcomes if not o.ok]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


#: Notes a sample gets while it is encoded (the others come from planning, which a resumed sample goes through
#: too): kept in the record's meta and in the done-index, so a resumed sample's report still carries them.
ENCODE_NOTES = ("prompt_truncated_from",)


def encode_notes(notes: Any) -> dict[str, Any]:
    """The :data:`ENCODE_NOTES` of a record's ``meta`` (or a work item's notes); {} for anything else."""
    if not isinstance(notes, dict):
        return {}
    return {k: notes[k] for k in ENCODE_NOTES if k in notes}


def write_notes(path: str | Path, outcomes: list[Outcome]) -> None:
    """Every written sample with a note (renamed, name shortened or cleaned, prompt cut, bucket chosen): the log
    shows a few."""
    lines = [json.dumps(o.to_json(), ensure_ascii=False) for o in outcomes if o.ok and o.extra]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def summarize(outcomes: list[Outcome], *, seconds: float | None = None, processed: int | None = None,
              **extra: Any) -> dict[str, Any]:
    """Counts by outcome and by reason, plus throughput when ``seconds`` is known.

    ``samples_per_second`` is the one rate figure (README, "Logs and exit status"): samples this run processed
    (``processed``: written, skipped or failed, not resumed; default: the records written) per second of the
    longest rank's processing."""
    status = Counter(o.status for o in outcomes)
    reasons = Counter(o.reason for o in outcomes if o.reason)
    by_status_reason: dict[str, Counter] = {}
    for o in outcomes:
        if o.reason:
            by_status_reason.setdefault(o.status, Counter())[o.reason] += 1
    summary: dict[str, Any] = {
        "samples": len(outcomes),
        "by_status": dict(sorted(status.items())),
        "by_reason": dict(sorted(reasons.items())),
        "reasons_by_status": {k: dict(sorted(v.items())) for k, v in sorted(by_status_reason.items())},
    }
    if seconds is not None:
        processed = status.get("done", 0) if processed is None else processed
        summary["seconds"] = round(seconds, 3)
        summary["processed"] = processed
        summary["samples_per_second"] = round(processed / seconds, 4) if seconds > 0 else None
    renamed = sum(1 for o in outcomes if o.extra.get("renamed_from"))
    if renamed:
        summary["renamed_collisions"] = renamed
    altered = sum(1 for o in outcomes if o.extra.get("original_name"))
    if altered:
        summary["names_changed"] = altered
    truncated = sum(1 for o in outcomes if o.ok and o.extra.get("prompt_truncated_from"))
    if truncated:
        summary["truncated_prompts"] = truncated
    summary.update(extra)
    return summary


def write_summary(path: str | Path, summary: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
