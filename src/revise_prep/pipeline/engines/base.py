"""What every engine shares: the :class:`Engine` interface, the plan (resume check) and the finish (report, merge).

An engine runs a step in three parts: :func:`plan_work` (this rank's share, less what is done or
quarantined), its own execution (decode, encode, write: :mod:`.writer`), then :func:`finish_run` (this
rank's report, and the merged list, failures and summary once every rank has finished). Planning and
finishing the same way is what lets a folder started with one engine resume with another.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from revise_prep.errors import CRASHED_REPEATEDLY, SampleError
from revise_prep.pipeline import resume
from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.inflight import MAX_DEATHS, InflightJournal
from revise_prep.pipeline.merge import part_path, try_merge, write_part
from revise_prep.pipeline.progress import Notices
from revise_prep.pipeline.stage import Stage, StageFactory, WorkItem, describer, stage_layout
from revise_prep.records.atomic import clean_temporaries
from revise_prep.records.layout import FAILURES_FILE
from revise_prep.records.reports import Outcome, encode_notes
from revise_prep.records.shapes import record_shape
from revise_prep.settings import ExecutionSettings

log = logging.getLogger(__name__)


class Engine(Protocol):
    """Runs a step's stage over its work items: plan → execute → finish. Built as ``ENGINE(settings, rank)``
    (the ``--engine`` settings; this process's rank, for engines with static ranks) by
    :func:`revise_prep.pipeline.engines.get_engine`; building it fails fast (e.g. Ray not installed), before
    the step writes anything."""

    rank: RankInfo  # this process's place: it writes config.json when main; reports merge over its world_size

    def run(self, factory: StageFactory, items: list[WorkItem], out: Path, settings: ExecutionSettings, *,
            loaded=None) -> dict[str, Any] | None:
        """Produce this process's share of ``items`` into ``out``; the merged summary, or None while other
        ranks still run. ``loaded``: models already in this process (used where this process encodes)."""


def with_shape(outcome: Outcome, shape: str | None) -> Outcome:
    """The record's bucket shape in the outcome, for the per-shape list files (records/shapes.py)."""
    if shape:
        outcome.extra = {**outcome.extra, "shape": shape}
    return outcome


def failure_outcome(item: WorkItem, err: SampleError, payload_paths: dict[str, str | None]) -> Outcome:
    """The outcome of a sample that failed (or was skipped) for ``err``."""
    return Outcome(index=item.index, name=item.name, status="skipped" if err.skip else "failed",
                   reason=err.reason, message=err.message, **payload_paths)


@dataclass
class Plan:
    """What the resume check left to do: the outcomes known already (pre-failed, resumed) and the items to do."""

    outcomes: list[Outcome]
    todo: list[WorkItem]
    index: resume.DoneIndex  # records written now are appended here
    journal: InflightJournal  # samples in flight, so that a poison sample is not retried forever
    sig: str
    total: int
    shapes: dict[int, str | None] = field(default_factory=dict)  # bucket shape of each record resumed or written
    quarantined: int = 0  # samples failed as crashed_repeatedly

    def close(self) -> None:
        try:
            self.index.close()
        finally:
            self.journal.close()


def plan_work(stage: Stage, items: list[WorkItem], out: Path, rank: RankInfo, settings: ExecutionSettings,
              notices: Notices | None = None) -> Plan:
    """This rank's share after the resume check (shared by every engine): clean its temporaries, drop its
    stale report, count valid records as resumed and return the rest to do."""
    meta = stage_layout(stage, out).meta  # reports and bookkeeping
    describe = describer(stage)
    notices = notices or Notices(log)
    mine = rank.shard(items)
    removed = clean_temporaries(out, {item.path.name for item in mine if item.path is not None})
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run", removed)
    part_path(meta, rank.rank, rank.world_size).unlink(missing_ok=True)  # no stale report of ours gets merged
    signature = stage.signature()
    outcomes: list[Outcome] = []
    todo: list[WorkItem] = []
    mismatched = 0
    index = resume.DoneIndex(meta, rank.rank, rank.world_size)
    journal = InflightJournal(meta, rank.rank, rank.world_size)
    quarantined = 0
    sig = resume.signature_hash(signature)
    shapes: dict[int, str | None] = {}  # bucket shape of each record written or resumed
    for item in mine:
        if item.failure is not None:
            outcomes.append(item.failure)
            continue
        if index.trusted(item.path, sig):
            state, detail = resume.VALID, ""
            shapes[item.index] = index.shapes.get(item.path.name)
            noted = index.notes.get(item.path.name, {})
        else:
            kept: dict[str, Any] = {}
            state, detail = resume.check_record(item.path, stage.step, signature, keep=kept)
            shapes[item.index] = record_shape(kept.get("meta"))
            noted = encode_notes(kept.get("meta"))
            if state == resume.VALID:
                index.add(item.path, sig, shapes[item.index], noted)
        if state == resume.VALID and item.shape and shapes[item.index] != item.shape:
            state, detail = resume.MISMATCHED, f"bucket {shapes[item.index]}, planned {item.shape}"
        if state == resume.VALID or (state == resume.MISMATCHED and settings.keep_mismatched):
            item.notes.update(noted)  # the notes its encode made (a cut prompt), as a sample done now has them
            outcomes.append(with_shape(Outcome(index=item.index, name=item.name, status="resumed",
                                               path=str(item.path), **describe(item)), shapes[item.index]))
            continue
        if state == resume.MISMATCHED:
            mismatched += 1
            notices("redone (other settings)", "%s: redoing: %s", item.path, detail, where="this log only")
        elif state == resume.INVALID:
            notices("redone (unreadable)", "%s: redoing: %s", item.path, detail, where="this log only")
        deaths = journal.quarantined(item.name)
        if deaths and not settings.retry_crashed:
            quarantined += 1
            outcomes.append(failure_outcome(item, SampleError(
                CRASHED_REPEATEDLY, f"{item.name}: in flight when a run or worker process holding it died, {deaths} "
                                    "times; not tried again (--retry-crashed tries it)"), describe(item)))
            continue
        todo.append(item)
    notices.flush()
    notices.known = earlier_skips(meta)  # a rule skip the last run recorded is counted, not logged again
    prefailed: dict[str, dict[str, int]] = {}  # status -> reason -> count (duplicates, malformed, quarantined)
    for o in outcomes:
        if o.status != "resumed":
            prefailed.setdefault(o.status, {}).setdefault(str(o.reason), 0)
            prefailed[o.status][str(o.reason)] += 1
    journal.plan(total=len(mine), todo=len(todo), resumed=sum(o.status == "resumed" for o in outcomes),
                 prefailed=prefailed)  # for `revise-prep status`
    if quarantined:
        log.warning("%d sample(s) were in flight when a process holding them died %d times and are failed as %s "
                    "(--retry-crashed tries them again)", quarantined, MAX_DEATHS, CRASHED_REPEATEDLY)
    if mismatched:
        log.warning("%d existing record(s) were made with other settings and are redone "
                    "(--keep-mismatched keeps them)", mismatched)
    log.info("rank %d/%d: %d sample(s), %d to do, %d already done", rank.rank, rank.world_size,
             len(mine), len(todo), sum(o.status == "resumed" for o in outcomes))
    return Plan(outcomes, todo, index, journal, sig, len(mine), shapes, quarantined)


def earlier_skips(meta: Path) -> dict[str, str]:
    """Sample name -> reason of every sample the last finished run skipped by a rule (its failures.jsonl)."""
    try:
        lines = (meta / FAILURES_FILE).read_text(encoding="utf-8").split("\n")
    except OSError:
        return {}
    known = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("status") == "skipped" and entry.get("name"):
            known[str(entry["name"])] = str(entry.get("reason"))
    return known


def finish_run(stage: Stage, out: Path, rank: RankInfo, outcomes: list[Outcome], seconds: float,
               settings: ExecutionSettings, reliability: dict[str, int] | None = None,
               processed: int | None = None) -> dict[str, Any] | None:
    """Write this rank's report and merge the reports when every rank has finished (shared by every engine).

    ``processed``: samples this run took up (written, skipped or failed; not resumed or failed before any
    work), the numerator of the one samples/s figure (README, "Logs and exit status")."""
    meta = stage_layout(stage, out).meta
    done = sum(o.status == "done" for o in outcomes)
    processed = done if processed is None else processed
    log.debug("rank %d: %d sample(s) processed, %d record(s) written in %.1f s", rank.rank, processed, done, seconds)
    write_part(meta, rank.rank, rank.world_size, outcomes, {"seconds": seconds, "done": done, "processed": processed,
                                                            "reliability": reliability or {}})
    return try_merge(meta, rank.world_size, stage.list_name, {"step": stage.step},
                     relative_paths=settings.relative_paths)
