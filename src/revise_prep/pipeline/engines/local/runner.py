"""The local engine: this process (or each torchrun/srun rank) decodes in supervised workers, encodes, writes.

A step (see :class:`~revise_prep.pipeline.stage.Stage`) says how to decode one work item (in a worker
process) and how to encode what was decoded (in the main process, on the GPU); this module does the rest
the same way for every step: exactly-once bookkeeping, failures that never stop the run, reports and rank
merge (planning and finishing as every engine: ``engines/base.py``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from revise_prep.errors import ENCODE_ERROR, WRITE_ERROR, SampleError
from revise_prep.pipeline.dist import RankInfo, rank_info
from revise_prep.pipeline.engines.base import failure_outcome, finish_run, plan_work, with_shape
from revise_prep.pipeline.engines.local.workers import DecodePool, PoolStats, decode_one
from revise_prep.pipeline.engines.writer import RecordWriter
from revise_prep.pipeline.inflight import InflightJournal
from revise_prep.pipeline.locks import ShareLock
from revise_prep.pipeline.progress import Notices, Progress
from revise_prep.pipeline.stage import Stage, StageFactory, WorkItem, describer, stage_layout
from revise_prep.records.reports import Outcome
from revise_prep.records.shapes import record_shape
from revise_prep.settings import EngineSettings, ExecutionSettings

log = logging.getLogger(__name__)


def _decode_inline(decode, items: list[WorkItem], timeout: float | None, journal: InflightJournal):
    """``--num-workers 0``: decode in this process (journalled first: a crash here kills the run)."""
    for item in items:
        journal.start(item.name)
        yield decode_one(decode, item, timeout)


def decoder_threads(num_workers: int) -> int:
    """Decoder threads per worker so that all workers together use the machine's cores once (0: FFmpeg's default)."""
    if num_workers <= 0:
        return 0
    return max(1, (os.cpu_count() or 1) // num_workers)


class LocalEngine:
    """``--engine local``: this process is one rank of a static split (torchrun/srun, or a world of one)."""

    def __init__(self, settings: EngineSettings | None = None, rank: RankInfo | None = None) -> None:
        self.rank = rank or rank_info()

    def run(self, factory: StageFactory, items: list[WorkItem], out: Path, settings: ExecutionSettings, *,
            loaded=None) -> dict[str, Any] | None:
        """Load the step's models here (or use ``loaded``) and process this rank's share of ``items``."""
        return run_stage(factory.build(self.rank, loaded), items, out, self.rank, settings)


ENGINE = LocalEngine


def run_stage(stage: Stage, items: list[WorkItem], out: Path, rank: RankInfo,
              settings: ExecutionSettings = ExecutionSettings()) -> dict[str, Any] | None:
    """Process this rank's share of ``items`` into ``out``; returns the merged summary (or None while
    other ranks are still running). Holds this rank's lock on the folder for the whole run."""
    if hasattr(stage, "decoder_threads"):
        stage.decoder_threads = decoder_threads(settings.num_workers)
    layout = stage_layout(stage, out).prepare()
    with ShareLock(layout.meta, rank.rank, rank.world_size):
        return _run_locked(stage, items, out, rank, settings)


def _run_locked(stage: Stage, items: list[WorkItem], out: Path, rank: RankInfo,
                settings: ExecutionSettings) -> dict[str, Any] | None:
    describe = describer(stage)
    num_workers, decode_timeout = settings.num_workers, settings.decode_timeout
    notices = Notices(log)
    if hasattr(stage, "notices"):
        stage.notices = notices
    plan = plan_work(stage, items, out, rank, settings, notices)
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
                outcomes.append(with_shape(Outcome(index=item.index, name=item.name, status="done", path=str(path),
                                                   **describe(item)), shapes.get(item.index)))
            else:
                outcomes.append(Outcome(index=item.index, name=item.name, status="failed", reason=WRITE_ERROR,
                                        message=f"cannot write {path}: {error}", **describe(item)))

    if hasattr(stage, "prepare"):
        stage.prepare(todo)
    if num_workers > 0:
        pool = DecodePool(stage.decode, num_workers, timeout=decode_timeout,
                          pin_memory=getattr(stage, "pin_decoded", False) and torch.cuda.is_available())
        stats, loader = pool.stats, pool.map(todo)
    else:
        stats, loader = PoolStats(), _decode_inline(stage.decode, todo, decode_timeout, journal)
    writer = RecordWriter(on_written)
    planned = len(outcomes)  # what the loop appends after this was processed by this run
    start = time.perf_counter()
    bar = Progress(len(todo), stage.step, enabled=settings.progress and rank.is_main,
                   interval=settings.progress_interval)
    try:
        for decoded in loader:
            item = decoded.item
            journal.start(item.name)  # the main process holds it now: a death here counts against it
            failed: Outcome | None = None
            if decoded.error is not None:
                failed = failure_outcome(item, decoded.error, describe(item))
                notices.sample(item.name, decoded.error, "%s: %s: %s", item.name or item.index, decoded.error.reason,
                               decoded.error.message)
            else:
                try:
                    record = stage.encode(decoded)
                except SampleError as err:
                    failed = failure_outcome(item, err, describe(item))
                except Exception as err:  # noqa: BLE001 - record it, keep going
                    notices(ENCODE_ERROR, "%s: encoding failed:\n%s", item.name, traceback.format_exc(),
                            level=logging.ERROR)
                    failed = failure_outcome(item, SampleError(ENCODE_ERROR, f"{type(err).__name__}: {err}"),
                                             describe(item))
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
                journal.end(item.name, failed.status, failed.reason)  # the reason, for `revise-prep status`
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
    return finish_run(stage, out, rank, outcomes, time.perf_counter() - start, settings, reliability,
                      processed=len(outcomes) - planned)
