"""The run's reports: the list file training reads, ``failures.jsonl`` and ``summary.json``."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from revise_prep.records.atomic import atomic_write_text

FAILURES_FILE = "failures.jsonl"
SUMMARY_FILE = "summary.json"


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


def write_list(path: str | Path, record_paths: list[str]) -> None:
    """One record path a line, as the ReViSE training dataset reads it."""
    atomic_write_text(path, "".join(p + "\n" for p in record_paths))


def read_list(path: str | Path) -> list[str]:
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def read_list_paths(list_file: str | Path) -> list[Path]:
    """The record paths of a list file; a relative line that does not exist from the current directory is
    taken relative to the list's own folder (so a moved dataset folder still reads)."""
    list_file = Path(list_file)
    return [p if p.is_absolute() or p.exists() else list_file.parent / p for p in map(Path, read_list(list_file))]


def write_failures(path: str | Path, outcomes: list[Outcome]) -> None:
    lines = [json.dumps(o.to_json(), ensure_ascii=False) for o in outcomes if not o.ok]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def summarize(outcomes: list[Outcome], *, seconds: float | None = None, **extra: Any) -> dict[str, Any]:
    """Counts by outcome and by reason, plus throughput when ``seconds`` is known."""
    status = Counter(o.status for o in outcomes)
    reasons = Counter(o.reason for o in outcomes if o.reason)
    summary: dict[str, Any] = {
        "samples": len(outcomes),
        "by_status": dict(sorted(status.items())),
        "by_reason": dict(sorted(reasons.items())),
    }
    if seconds is not None:
        summary["seconds"] = round(seconds, 3)
        summary["samples_per_second"] = round(status.get("done", 0) / seconds, 4) if seconds > 0 else None
    renamed = sum(1 for o in outcomes if o.extra.get("renamed_from"))
    if renamed:
        summary["renamed_collisions"] = renamed
    truncated = sum(1 for o in outcomes if o.ok and o.extra.get("prompt_truncated_from"))
    if truncated:
        summary["truncated_prompts"] = truncated
    summary.update(extra)
    return summary


def write_summary(path: str | Path, summary: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
