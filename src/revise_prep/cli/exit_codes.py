"""Exit statuses a job scheduler can act on (documented in the README, "Exit status")."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from revise_prep.records.layout import FAILURES_FILE, NOTES_FILE, SUMMARY_FILE
from revise_prep.records.status import count_lines

log = logging.getLogger("revise_prep")

OK = 0  # every sample done, resumed or skipped by a rule of the original
INTERNAL_ERROR = 1  # a bug: the traceback is printed
USAGE = 2  # a usage or configuration error: one line names it (--debug shows the traceback)
CANNOT_WRITE = 3  # disk full, folder not writable, or another process writes this folder: fix, re-run to resume
SOME_FAILED = 4  # some samples failed (each has a line in failures.jsonl); all the others are written
NOTHING_PRODUCED = 5  # no record at all in the list file (every sample failed or was skipped, or no input)
INTERRUPTED = 130
BROKEN_PIPE = 141  # as a process killed by SIGPIPE (e.g. `revise-prep inspect --json | head`)


def outcome_counts(summary: dict[str, Any]) -> str:
    """``done 12, skipped 4 (short_prompt 3, duplicate_sample 1), failed 1 (missing_file 1); 17 processed in 10.3 s,
    1.65 samples/s`` from a merged summary."""
    by_status, reasons = summary.get("by_status", {}), summary.get("reasons_by_status", {})
    parts = []
    for status in ("done", "resumed", "skipped", "failed"):
        n = by_status.get(status, 0)
        if n or status == "done":
            why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.get(status, {}).items(), key=lambda kv: -kv[1]))
            parts.append(f"{status} {n}" + (f" ({why})" if why else ""))
    text = ", ".join(parts)
    if summary.get("samples_per_second") is not None:
        text += f"; {summary.get('processed', by_status.get('done', 0))} processed in {summary['seconds']:.1f} s"
        if by_status.get("done"):  # a run that only resumed and re-skipped has no rate worth a figure
            text += f", {summary['samples_per_second']:.3g} samples/s"
    return text


def run_status(summary: dict[str, Any] | None) -> int:
    """The exit status of ``vae``/``ar``/``run`` from the merged summary (None: this rank did not merge).

    A rank that finishes before others exits 0 once its share is written: torchrun stops every other rank
    when one exits non-zero, which would cut their work short. The rank that merges (the last to finish)
    exits with the status of the whole run.
    """
    if summary is None:
        log.info("this rank's share is written; the last rank to finish merges the reports and its exit status "
                 "is the whole run's")
        return OK
    by_status = summary.get("by_status", {})
    failures = Path(summary["list_file"]).parent / FAILURES_FILE
    produced = by_status.get("done", 0) + by_status.get("resumed", 0)
    log.info("summary: %s", outcome_counts(summary))
    log.info("list file (%d record%s): %s", produced, "" if produced == 1 else "s", summary["list_file"])
    lost = by_status.get("skipped", 0) + by_status.get("failed", 0)
    if lost:
        log.info("failures.jsonl (%d sample%s skipped or failed, one line each): %s", lost, "" if lost == 1 else "s",
                 failures)
    noted = count_lines(failures.parent / NOTES_FILE)
    if noted:
        log.info("notes.jsonl (%d record%s with a note: renamed, name changed, prompt cut or bucket chosen; one "
                 "line each): %s", noted, "" if noted == 1 else "s", failures.parent / NOTES_FILE)
    log.info("summary.json: %s", failures.parent / SUMMARY_FILE)
    if produced == 0:
        why = "the input has no samples" if not summary.get("samples") else f"see {failures}"
        log.error("no record was produced (%s); exit status %d", why, NOTHING_PRODUCED)
        return NOTHING_PRODUCED
    if by_status.get("failed"):
        log.warning("%d sample(s) failed (one line each in %s); exit status %d", by_status["failed"], failures,
                    SOME_FAILED)
        return SOME_FAILED
    return OK
