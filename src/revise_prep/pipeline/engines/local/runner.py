"""The local engine: this process (or each torchrun/srun rank) decodes in supervised workers, encodes, writes.

A step (see :class:`~revise_prep.pipeline.stage.Stage`) says how to decode one work item (in a worker
process) and how to encode what was decoded (in the main process, on the GPU); this module does the rest
the same way for every step: exactly-once bookkeeping, failures that never stop the run, reports and rank
merge (planning and finishing as every engine: ``engines/base.py``).
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from revise_prep.errors import ENCODE_ERROR, WRITE_ERROR, SampleError
from revise_prep.pipeline.dist import RankInfo, rank_info
from revise_prep.pipeline.engines.base import failure_outcome, finish_run, plan_work, with_shape
from revise_prep.pipeline.engines.local.cpu_budget import apply_main_threads, budget_for, stage_budget
from revise_prep.pipeline.engines.local.handoff import DeviceHandoff
from revise_prep.pipeline.engines.local.workers import DecodePool, PoolStats, decode_one
from revise_prep.pipeline.engines.writer import RecordWriter
from revise_prep.pipeline.inflight import InflightJournal
from revise_prep.pipeline.locks import ShareLock
from revise_prep.pipeline.progress import Notices, Progress
from revise_prep.pipeline.stage import Stage, StageFactory, WorkItem, describer, stage_layout
from revise_prep.records.reports import Outcome, encode_notes
from revise_prep.records.shapes import record_shape
from revise_prep.settings import EngineSettings, ExecutionSettings

log = logging.getLogger(__name__)


def device_handoff(stage: Stage) -> DeviceHandoff | None:
    """The GPU hand-off when the stage encodes on a CUDA device (the stage then leaves its outputs there)."""
    device = getattr(stage, "device", None)
    if device is None or torch.device(device).type != "cuda":
        return None
    if hasattr(stage, "keep_on_device"):
        stage.keep_on_device = True
    return DeviceHandoff(torch.device(device))


def _no_slot(decoded, event=None) -> None:
    """Inline decoding has no slots to give back."""


def _warm_first(loader, warm_up):
    """``loader``'s items, with ``warm_up()`` run first (the workers are decoding already)."""
    try:
        warm_up()
    except Exception:  # noqa: BLE001 - a warm-up is an optimisation: the first sample shows any real error
        log.warning("model warm-up failed (the run goes on):\n%s", traceback.format_exc())
    try:
        yield from loader
    finally:
        loader.close()


def _decode_inline(decode, items: list[WorkItem], timeout: float | None, journal: InflightJournal):
    """``--num-workers 0``: decode in this process (journalled first: a crash here kills the run)."""
    for item in items:
        journal.start(item.name)
        yield decode_one(decode, item, timeout)


class LocalEngine:
    """``--engine local``: this process is one rank of a static split (torchrun/srun, or a world of one)."""

    def __init__(self, settings: EngineSettings | None = None, rank: RankInfo | None = None) -> None:
        self.rank = rank or rank_info()

    def run(self, factory: StageFactory, items: list[WorkItem], out: Path, settings: ExecutionSettings, *,
            loaded=None) -> dict[str, Any] | None:
        """Load the step's models here (or use ``loaded``) and process this rank's share of ``items``. When the
        models must be loaded, the decode workers start first, on the samples that have no record yet."""
        early = EarlyDecode.start(factory, items, self.rank, settings) if loaded is None else None
        try:
            stage = factory.build(self.rank, loaded)
        except BaseException:
            if early is not None:
                early.close()
            raise
        return run_stage(stage, items, out, self.rank, settings, early=early)


ENGINE = LocalEngine


def run_stage(stage: Stage, items: list[WorkItem], out: Path, rank: RankInfo,
              settings: ExecutionSettings = ExecutionSettings(), *, early: EarlyDecode | None = None,
              ) -> dict[str, Any] | None:
    """Process this rank's share of ``items`` into ``out``; returns the merged summary (or None while
    other ranks are still running). Holds this rank's lock on the folder for the whole run. ``early``: decode
    workers started before the models loaded (used if they decode what the plan needs, else stopped)."""
    try:
        budget = stage_budget(stage, settings, rank)
        if hasattr(stage, "decoder_threads"):
            stage.decoder_threads = budget.decoder_threads
        if early is not None and not early.matches(stage):
            log.debug("the loaded stage decodes differently from the early decode workers: restarting them")
            early = early.close()
        apply_main_threads(budget)
        layout = stage_layout(stage, out).prepare()
        with ShareLock(layout.meta, rank.rank, rank.world_size):
            return _run_locked(stage, items, out, rank, settings, early)
    finally:
        if early is not None:
            early.close()  # (a no-op once the run has taken its workers)


class EarlyDecode:
    """Decode workers started before the models load, on this rank's samples that have no record yet (those
    are to do whatever the resume check finds), with the stage as the workers see it (no models)."""

    def __init__(self, decoder: Stage, items: list[WorkItem], pool: DecodePool) -> None:
        self.decoder, self.items, self.pool = decoder, items, pool
        self.results = pool.map(items)
        self.state = pickle.dumps(decoder)

    @classmethod
    def start(cls, factory: StageFactory, items: list[WorkItem], rank: RankInfo,
              settings: ExecutionSettings) -> EarlyDecode | None:
        if settings.num_workers <= 0:
            return None
        fresh = [it for it in rank.shard(items) if it.failure is None and it.path is not None and not it.path.exists()]
        if not fresh:
            return None
        try:
            decoder = factory.build(None)
            if hasattr(decoder, "decoder_threads"):
                decoder.decoder_threads = budget_for(settings.num_workers, rank.local_world_size, encode_on_cpu=False,
                                                     override=settings.cpu_threads).decoder_threads
            slots = decoder.decoded_bytes() if hasattr(decoder, "decoded_bytes") else 0
            pool = DecodePool(decoder.decode, settings.num_workers, timeout=settings.decode_timeout, slot_bytes=slots)
            return cls(decoder, fresh, pool)
        except Exception:  # noqa: BLE001 - an optimisation: the run starts its workers after the models load
            log.debug("decode workers not started early:\n%s", traceback.format_exc())
            return None

    def matches(self, stage: Stage) -> bool:
        """Whether the loaded stage decodes exactly as the early workers do (what the workers get is equal);
        a stage that does not say what its workers get (no ``__getstate__`` dropping its models) never does."""
        if getattr(type(stage), "__getstate__", object.__getstate__) is object.__getstate__:
            return False
        try:
            return pickle.dumps(stage) == self.state
        except Exception:  # noqa: BLE001
            return False

    def take(self, todo: list[WorkItem]):
        """(pool, results) when the plan's samples are the early ones, in order; else stop them and None."""
        if self.results is not None and [it.index for it in todo] == [it.index for it in self.items]:
            log.debug("the %d decode workers started before the models loaded go on", self.pool.num_workers)
            taken, self.results = (self.pool, self.results), None
            return taken
        log.debug("the plan differs from the samples decoding since before the models loaded: restarting the workers")
        self.close()
        return None

    def close(self) -> None:
        if self.results is not None:
            self.results.close()
            self.results = None
        return None


def _run_locked(stage: Stage, items: list[WorkItem], out: Path, rank: RankInfo,
                settings: ExecutionSettings, early: EarlyDecode | None = None) -> dict[str, Any] | None:
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
            index.add(path, sig, shapes.get(item.index), encode_notes(item.notes))
        with lock:
            if error is None:
                outcomes.append(with_shape(Outcome(index=item.index, name=item.name, status="done", path=str(path),
                                                   **describe(item)), shapes.get(item.index)))
            else:
                outcomes.append(Outcome(index=item.index, name=item.name, status="failed", reason=WRITE_ERROR,
                                        message=f"cannot write {path}: {error}", **describe(item)))

    handoff = device_handoff(stage)
    if hasattr(stage, "prepare"):
        stage.prepare(todo)
    pin = getattr(stage, "pin_decoded", False) and torch.cuda.is_available()
    taken = early.take(todo) if early is not None else None
    if taken is not None:  # the workers that started before the models loaded go on
        pool, loader = taken
        pool.pin(pin)
        stats, release = pool.stats, pool.release
    elif num_workers > 0:
        pool = DecodePool(stage.decode, num_workers, timeout=decode_timeout, pin_memory=pin,
                          slot_bytes=stage.decoded_bytes() if hasattr(stage, "decoded_bytes") else 0)
        stats, loader, release = pool.stats, pool.map(todo), pool.release
    else:
        stats, loader = PoolStats(), _decode_inline(stage.decode, todo, decode_timeout, journal)
        release = _no_slot
    if todo and hasattr(stage, "warm_up"):
        loader = _warm_first(loader, stage.warm_up)  # the models warm up while the first samples decode
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
                    if handoff is not None:  # one non-blocking copy per clip; its slot is free once it has arrived
                        decoded.data, arrived = handoff.to_device(decoded.data)
                        release(decoded, arrived)
                    record = stage.encode(decoded)
                    ticket = None
                    if handoff is not None:  # back through page-locked buffers: the writer waits, not this loop
                        main, extras = record if isinstance(record, tuple) else (record, [])
                        (main, *copied), ticket = handoff.to_host(main, *[e for _, e in extras])
                        record = (main, [(p, e) for (p, _), e in zip(extras, copied)]) if extras else main
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
                            writer.put(None, path, extra, ticket, release=False)  # the main record's buffers
                    shapes[item.index] = record_shape(record)
                    writer.put(item, item.path, record, ticket)
                finally:
                    release(decoded)  # (CPU) the sample is encoded: its slot may take another
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
