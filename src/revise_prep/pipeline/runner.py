"""The loop every step shares: shard, resume, decode in supervised workers, encode, write in the background.

A step (see :class:`Stage`) says how to decode one work item (in a worker process) and how to
encode what was decoded (in the main process, on the GPU); this module does the rest the same way
for every step: exactly-once bookkeeping, failures that never stop the run, reports and rank merge.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from revise_prep.errors import CRASHED_REPEATEDLY, ENCODE_ERROR, WRITE_ERROR, SampleError
from revise_prep.pipeline import resume
from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.inflight import MAX_DEATHS, InflightJournal
from revise_prep.pipeline.locks import ShareLock
from revise_prep.pipeline.merge import part_path, try_merge, write_part
from revise_prep.pipeline.progress import DEFAULT_INTERVAL, Notices, Progress
from revise_prep.pipeline.workers import DecodePool, PoolStats, decode_one
from revise_prep.pipeline.writer import RecordWriter
from revise_prep.records.atomic import clean_temporaries
from revise_prep.records.layout import FAILURES_FILE, OutputLayout
from revise_prep.records.reports import Outcome
from revise_prep.records.shapes import record_shape

log = logging.getLogger(__name__)


@dataclass
class WorkItem:
    """One sample to produce: its input index, record name and path, and the step's own payload."""

    index: int
    name: str | None
    path: Path | None
    payload: Any = None
    failure: Outcome | None = None  # set when the item is already known to fail (duplicate, malformed)
    notes: dict[str, Any] = field(default_factory=dict)  # e.g. renamed_from, kept in meta and reports


@dataclass
class Decoded:
    """What a worker hands to the encoder: the payload it decoded, or the reason it could not."""

    item: WorkItem
    data: Any = None
    error: SampleError | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def pin_memory(self) -> "Decoded":
        """Called by the DataLoader's pinning thread (``pin_memory=True``): page-locked frames copy to the GPU
        asynchronously, off the encode loop."""
        self.data = map_tensors(self.data, torch.Tensor.pin_memory)
        return self


def map_tensors(obj: Any, fn) -> Any:
    """Apply ``fn`` to every tensor inside dicts, lists and dataclasses (e.g. a Clip's frames)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [map_tensors(v, fn) for v in obj]
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{f.name: map_tensors(getattr(obj, f.name), fn) for f in fields(obj)
                               if isinstance(getattr(obj, f.name), (torch.Tensor, dict, list))})
    return obj


class Stage(Protocol):
    step: str  # "vae" | "ar" | "run": the meta tag resume checks
    list_name: str

    def signature(self) -> dict[str, Any]: ...

    def decode(self, item: WorkItem) -> Decoded: ...

    def encode(self, decoded: Decoded) -> dict[str, Any] | tuple[dict[str, Any], list[tuple[Path, dict]]]:
        """The record to write, or (record, [(path, intermediate record), ...]) written before it."""


def _decode_inline(decode, items: list[WorkItem], timeout: float | None, journal: InflightJournal):
    """``--num-workers 0``: decode in this process (journalled first: a crash here kills the run)."""
    for item in items:
        journal.start(item.name)
        yield decode_one(decode, item, timeout)


def _with_shape(outcome: Outcome, shape: str | None) -> Outcome:
    """The record's bucket shape in the outcome, for the per-shape list files (records/shapes.py)."""
    if shape:
        outcome.extra = {**outcome.extra, "shape": shape}
    return outcome


def _failure(item: WorkItem, err: SampleError, payload_paths: dict[str, str | None]) -> Outcome:
    return Outcome(index=item.index, name=item.name, status="skipped" if err.skip else "failed",
                   reason=err.reason, message=err.message, **payload_paths)


def stage_layout(stage: Stage, out: Path) -> OutputLayout:
    """Where ``stage`` writes into ``out``: records there, reports there or in its sidecar."""
    return OutputLayout.for_output(out, stage.list_name, records_only=getattr(stage, "records_only", False))


def run_stage(stage: Stage, items: list[WorkItem], out: Path, rank: RankInfo, **options) -> dict[str, Any] | None:
    """Process this rank's share of ``items`` into ``out``; returns the merged summary (or None while
    other ranks are still running). Holds this rank's lock on the folder for the whole run."""
    layout = stage_layout(stage, out).prepare()
    with ShareLock(layout.meta, rank.rank, rank.world_size):
        return _run_locked(stage, items, out, rank, **options)


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


def plan_work(stage: Stage, items: list[WorkItem], out: Path, rank: RankInfo, *, keep_mismatched: bool = False,
              describe=lambda item: {}, notices: Notices | None = None, retry_crashed: bool = False) -> Plan:
    """This rank's share after the resume check (shared by every engine): clean its temporaries, drop its
    stale report, count valid records as resumed and return the rest to do."""
    meta = stage_layout(stage, out).meta  # reports and bookkeeping
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
        else:
            kept: dict[str, Any] = {}
            state, detail = resume.check_record(item.path, stage.step, signature, keep=kept)
            shapes[item.index] = record_shape(kept.get("meta"))
            if state == resume.VALID:
                index.add(item.path, sig, shapes[item.index])
        if state == resume.VALID or (state == resume.MISMATCHED and keep_mismatched):
            outcomes.append(_with_shape(Outcome(index=item.index, name=item.name, status="resumed",
                                                path=str(item.path), **describe(item)), shapes[item.index]))
            continue
        if state == resume.MISMATCHED:
            mismatched += 1
            notices("redone (other settings)", "%s: redoing: %s", item.path, detail, where="this log only")
        elif state == resume.INVALID:
            notices("redone (unreadable)", "%s: redoing: %s", item.path, detail, where="this log only")
        deaths = journal.quarantined(item.name)
        if deaths and not retry_crashed:
            quarantined += 1
            outcomes.append(_failure(item, SampleError(
                CRASHED_REPEATEDLY, f"{item.name}: in flight when {deaths} earlier runs died; not tried again "
                                    "(--retry-crashed tries it)"), describe(item)))
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
                 prefailed=prefailed)
    if quarantined:
        log.warning("%d sample(s) were in flight when %d earlier runs died and are failed as %s "
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


def finish_run(stage: Stage, out: Path, rank: RankInfo, outcomes: list[Outcome], seconds: float, *,
               relative_paths: bool = False, reliability: dict[str, int] | None = None,
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
    return try_merge(meta, rank.world_size, stage.list_name, {"step": stage.step}, relative_paths=relative_paths)


def _run_locked(stage: Stage, items: list[WorkItem], out: Path, rank: RankInfo, *, num_workers: int = 2,
                progress: bool = True, keep_mismatched: bool = False, decode_timeout: float | None = None,
                pin_memory: bool = False, describe=lambda item: {}, relative_paths: bool = False,
                progress_interval: float = DEFAULT_INTERVAL, retry_crashed: bool = False) -> dict[str, Any] | None:
    notices = Notices(log)
    if hasattr(stage, "notices"):
        stage.notices = notices
    plan = plan_work(stage, items, out, rank, keep_mismatched=keep_mismatched, describe=describe, notices=notices,
                     retry_crashed=retry_crashed)
    outcomes, todo, index, journal, sig, shapes = (plan.outcomes, plan.todo, plan.index, plan.journal, plan.sig,
                                                   plan.shapes)
    lock = threading.Lock()

    def on_written(item: WorkItem | None, path: Path, error: BaseException | None) -> None:
        if item is None:  # an intermediate file: only its failure matters (the main record is written after it)
            if error is not None:
                notices("intermediate not written", "cannot write %s: %s", path, error, level=logging.ERROR,
                        where="this log only")
            return
        if error is None:
            index.add(path, sig, shapes.get(item.index))
        with lock:
            if error is None:
                outcomes.append(_with_shape(Outcome(index=item.index, name=item.name, status="done", path=str(path),
                                                    **describe(item)), shapes.get(item.index)))
            else:
                outcomes.append(Outcome(index=item.index, name=item.name, status="failed", reason=WRITE_ERROR,
                                        message=f"cannot write {path}: {error}", **describe(item)))

    if hasattr(stage, "prepare"):
        stage.prepare(todo)
    if num_workers > 0:
        pool = DecodePool(stage.decode, num_workers, timeout=decode_timeout,
                          pin_memory=pin_memory and torch.cuda.is_available())
        stats, loader = pool.stats, pool.map(todo)
    else:
        stats, loader = PoolStats(), _decode_inline(stage.decode, todo, decode_timeout, journal)
    writer = RecordWriter(on_written)
    planned = len(outcomes)  # what the loop appends after this was processed by this run
    start = time.perf_counter()
    bar = Progress(len(todo), stage.step, enabled=progress and rank.is_main, interval=progress_interval)
    try:
        for decoded in loader:
            item = decoded.item
            journal.start(item.name)  # the main process holds it now: a death here counts against it
            failed: Outcome | None = None
            if decoded.error is not None:
                failed = _failure(item, decoded.error, describe(item))
                notices.sample(item.name, decoded.error, "%s: %s: %s", item.name or item.index, decoded.error.reason,
                               decoded.error.message)
            else:
                try:
                    record = stage.encode(decoded)
                except SampleError as err:
                    failed = _failure(item, err, describe(item))
                except Exception as err:  # noqa: BLE001 - record it, keep going
                    notices(ENCODE_ERROR, "%s: encoding failed:\n%s", item.name, traceback.format_exc(),
                            level=logging.ERROR)
                    failed = _failure(item, SampleError(ENCODE_ERROR, f"{type(err).__name__}: {err}"), describe(item))
                else:
                    if isinstance(record, tuple):  # (record, [(path, intermediate record), ...])
                        record, extras = record
                        for path, extra in extras:
                            writer.put(None, path, extra)
                    shapes[item.index] = record_shape(record)
                    writer.put(item, item.path, record)
            if failed is not None:
                with lock:
                    outcomes.append(failed)
                journal.end(item.name, failed.status, failed.reason)
            else:
                journal.end(item.name)
            bar.update(1)
    finally:
        loader.close()  # stops the decode workers
        bar.close()
        try:
            writer.close()
        finally:
            plan.close()
            notices.flush()
    reliability = {**stats.as_dict(), "quarantined": plan.quarantined, "earlier_runs_died": journal.runs_died}
    return finish_run(stage, out, rank, outcomes, time.perf_counter() - start, relative_paths=relative_paths,
                      reliability=reliability, processed=len(outcomes) - planned)
