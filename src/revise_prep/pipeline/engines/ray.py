"""The Ray engine: a Ray Data pipeline that decodes on CPU tasks anywhere and encodes on GPU (or CPU) actors.

The driver plans exactly as the local engine (the resume check: ``plan_work``) and finishes exactly
as it (``finish_run``: this run's report, then the merged list, failures and summary), as rank 0 of a
world of 1, so a folder started with one engine resumes with the other.
Between the two, every item to do is one row: a CPU task runs ``stage.decode`` (the stage ships
without models), an encoder actor, which loads the models itself through the step's
:class:`StageFactory`, runs ``stage.encode`` and writes the record as the local engine does (``write_record``),
and the driver collects one outcome per input index. A killed worker or node is redone by Ray's
task and actor retries; a redone write replaces the same file with the same bytes, and an index
reported twice is counted once.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
import traceback
from pathlib import Path
from typing import Any

from revise_prep.errors import ENCODE_ERROR, WRITE_ERROR, InputError, SampleError
from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.engines.base import failure_outcome, finish_run, plan_work, with_shape
from revise_prep.pipeline.engines.local.workers import decode_one
from revise_prep.pipeline.engines.writer import FatalWriteError, write_record
from revise_prep.pipeline.locks import ShareLock
from revise_prep.pipeline.progress import Notices, Progress
from revise_prep.pipeline.stage import Decoded, Stage, StageFactory, WorkItem, describer, stage_layout
from revise_prep.records.atomic import clean_temporaries
from revise_prep.records.reports import Outcome
from revise_prep.records.shapes import record_shape
from revise_prep.settings import EngineSettings, ExecutionSettings

log = logging.getLogger(__name__)

INSTALL_HINT = "--engine ray needs Ray Data: pip install 'revise-prep[ray]'"
ENCODER_CPUS = 1  # CPUs an encoder actor reserves (besides its GPU share)
DECODE_MEMORY = 512 * 1024 ** 2  # memory a decode task reserves (two 81x480x832 uint8 clips and their pickle)


def import_ray():
    """``ray`` and ``ray.data``, or one line saying how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return ray


def connect(settings: EngineSettings) -> bool:
    """Join ``--ray-address`` (or RAY_ADDRESS) or start a local cluster; True when this call started Ray."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    address = settings.ray_address or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address or "local", include_dashboard=False, log_to_driver=True, logging_level=logging.WARNING,
             configure_logging=False)
    log.info("ray: %s (%s)", "joined " + address if address else "started a local cluster",
             ", ".join(f"{k}={v:g}" for k, v in sorted(ray.cluster_resources().items()) if k in ("CPU", "GPU")))
    return True


def encoder_resources(settings: EngineSettings, cluster: dict[str, float]) -> tuple[dict[str, float], int]:
    """(ray_remote_args of one encoder actor, how many actors at most): one per ``gpus_per_actor`` GPUs, or
    CPU actors (a quarter of the cluster's CPUs) when the cluster has no GPU."""
    gpus, cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 1.0)
    if gpus > 0:
        args = {"num_gpus": settings.gpus_per_actor, "num_cpus": ENCODER_CPUS}
        fit = most = max(1, int(gpus // settings.gpus_per_actor))
    else:
        args = {"num_cpus": ENCODER_CPUS}
        most, fit = max(1, int(cpus // 4)), max(1, int(cpus) - 1)  # one CPU is left to decoding
    if settings.actors is not None and settings.actors > fit:
        log.warning("ray: the cluster fits %d encoder actor(s), not %d; using %d", fit, settings.actors, fit)
    return args, min(settings.actors or most, fit)


class _Decode:
    """Ray Data task body: one work item (pickled) -> its Decoded (pickled), on any node's CPUs."""

    def __init__(self, stage: Stage, timeout: float | None) -> None:
        self.stage = stage
        self.timeout = timeout

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        import torch

        torch.set_num_threads(1)
        decoded = decode_one(self.stage.decode, pickle.loads(row["item"]), self.timeout)
        return {"index": row["index"], "decoded": pickle.dumps(decoded, protocol=pickle.HIGHEST_PROTOCOL)}


def encode_and_write(stage: Stage, decoded: Decoded, fsync: bool = True) -> dict[str, Any]:
    """Encode one decoded sample and write its record(s) atomically; what happened, as a small dict."""
    item = decoded.item
    result: dict[str, Any] = {"index": item.index, "status": "done", "path": None, "notes": item.notes}
    if decoded.error is not None:
        return {**result, "status": "skipped" if decoded.error.skip else "failed", "error": decoded.error}
    try:
        record = stage.encode(decoded)
    except SampleError as err:
        return {**result, "status": "skipped" if err.skip else "failed", "error": err}
    except Exception as err:  # noqa: BLE001 - record it, keep going
        log.error("%s: encoding failed:\n%s", item.name, traceback.format_exc())
        return {**result, "status": "failed", "error": SampleError(ENCODE_ERROR, f"{type(err).__name__}: {err}")}
    extras = []
    if isinstance(record, tuple):  # (record, [(path, intermediate record), ...]) written before it
        record, extras = record
    try:
        for path, extra in extras:
            try:
                write_record(path, extra, fsync=fsync)
            except OSError as err:  # (not a FatalWriteError: that stops the run)
                log.error("cannot write %s: %s", path, err)
        write_record(item.path, record, fsync=fsync)
    except FatalWriteError as err:
        return {**result, "status": "fatal", "message": str(err)}
    except Exception as err:  # noqa: BLE001 - a bad record must not stop the others
        return {**result, "status": "failed", "error": SampleError(WRITE_ERROR, f"cannot write {item.path}: {err}")}
    return {**result, "path": str(item.path), "shape": record_shape(record)}


class _Encoder:
    """Ray Data actor: loads the step's models once (on its GPU, or the CPU), then encodes and writes batches."""

    def __init__(self, factory: StageFactory) -> None:
        self.stage = factory.build(RankInfo())  # Ray gives the actor its GPU(s) as cuda:0..

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        decoded = [pickle.loads(blob) for blob in batch["decoded"]]
        if hasattr(self.stage, "prepare"):  # e.g. step 1 batches this batch's prompts through umT5
            self.stage.prepare([d.item for d in decoded if d.error is None])
        results = [encode_and_write(self.stage, d) for d in decoded]
        return {"index": np.asarray(batch["index"]),
                "result": np.array([pickle.dumps(r) for r in results], dtype=object)}


def _signature(factory: StageFactory) -> dict[str, Any]:
    return factory.build(RankInfo()).signature()


def _outcome(item: WorkItem, result: dict[str, Any], describe) -> Outcome:
    item.notes.update(result["notes"])  # e.g. prompt_truncated_from, set while encoding
    if result["status"] == "done":
        return with_shape(Outcome(index=item.index, name=item.name, status="done", path=result["path"],
                                  **describe(item)), result.get("shape"))
    return failure_outcome(item, result["error"], describe(item))


class RayEngine:
    """``--engine ray``: the driver plans, Ray Data decodes on CPU tasks and encodes on actors, the driver finishes."""

    def __init__(self, settings: EngineSettings, rank: RankInfo | None = None) -> None:
        import_ray()  # the install hint before anything is written
        self.settings = settings
        self.rank = RankInfo()  # the driver is the whole world: one report, merged at once

    def run(self, factory: StageFactory, items: list[WorkItem], out: Path, settings: ExecutionSettings, *,
            loaded=None) -> dict[str, Any] | None:
        """Process every item of ``items`` into ``out`` on a Ray cluster; returns the merged summary. The
        actors load the models themselves (``loaded`` is not used)."""
        ray = import_ray()
        layout = stage_layout(factory.build(None), out).prepare()
        started = connect(self.settings)
        try:
            with ShareLock(layout.meta, self.rank.rank, self.rank.world_size):
                return _run(ray, factory, items, out, self.settings, settings)
        finally:
            if started:
                ray.shutdown()


ENGINE = RayEngine


def _run(ray, factory: StageFactory, items: list[WorkItem], out: Path, engine: EngineSettings,
         settings: ExecutionSettings) -> dict[str, Any] | None:
    from ray.data import ActorPoolStrategy, DataContext

    rank = RankInfo()
    actor_args, actors = encoder_resources(engine, ray.cluster_resources())
    start = time.perf_counter()
    # the signature needs the models' identifiers: one task with an encoder's resources builds the stage
    signature = ray.get(ray.remote(**actor_args)(_signature).remote(factory))
    stage = factory.build(None)
    stage.signature = lambda: signature  # the driver's stage has no models; resume checks this signature
    describe = describer(stage)
    notices = Notices(log)
    plan = plan_work(stage, items, out, rank, settings, notices)
    outcomes, todo = plan.outcomes, plan.todo
    by_index = {item.index: item for item in todo}
    got: dict[int, Outcome] = {}
    try:
        if todo:
            ctx = DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(
                object_store_memory=engine.decoded_gb * 1024 ** 3)
            rows = [{"index": it.index, "item": pickle.dumps(it)} for it in todo]
            ds = ray.data.from_items(rows, override_num_blocks=len(rows))  # one item per task: work is pulled
            # Ray Data retries tasks and restarts actors (retrying their batch) without limit by default: a
            # lost worker or node costs time, never a sample. The decode tasks' memory reservation also keeps
            # Ray Data from fusing them into the encoder actors: decoding stays on CPU tasks, anywhere.
            ds = ds.map(_Decode(_decoding_stage(factory), settings.decode_timeout), num_cpus=1, memory=DECODE_MEMORY)
            # a fixed pool (one actor per GPU): models load once per actor, and every GPU works from the start
            ds = ds.map_batches(_Encoder, fn_constructor_kwargs={"factory": factory}, batch_size=1,
                                compute=ActorPoolStrategy(size=actors), **actor_args)
            log.info("ray: %d sample(s) to do on %d encoder actor(s) (%s each)", len(todo), actors,
                     ", ".join(f"{k}={v:g}" for k, v in actor_args.items()))
            bar = Progress(len(todo), stage.step, enabled=settings.progress, interval=settings.progress_interval)
            try:
                for row in ds.iter_rows():
                    result = pickle.loads(row["result"])
                    index = int(row["index"])
                    if index in got:  # a retried task reported it again: same file, counted once
                        continue
                    if result["status"] == "fatal":
                        raise FatalWriteError(result["message"])
                    item = by_index[index]
                    got[index] = _outcome(item, result, describe)
                    if got[index].status == "done":
                        plan.index.add(item.path, plan.sig, result.get("shape"))
                        plan.journal.end(item.name)
                    else:
                        notices.sample(item.name, result["error"], "%s: %s: %s", item.name or index,
                                       got[index].reason, got[index].message)
                        plan.journal.end(item.name, got[index].status, got[index].reason)
                    bar.update(1)
            finally:
                bar.close()
    finally:
        notices.flush()
        plan.close()
        clean_temporaries(out, {it.path.name for it in todo})  # a killed actor's half-written temporary
    missing = sorted(set(by_index) - set(got))
    if missing:
        raise RuntimeError(f"ray: no result for sample(s) {missing[:10]}; re-run the same command to resume")
    return finish_run(stage, out, rank, outcomes + list(got.values()), time.perf_counter() - start, settings,
                      {"quarantined": plan.quarantined}, processed=len(got))


def _decoding_stage(factory: StageFactory) -> Stage:
    """The stage the decode tasks run (no models): one decoder thread each, as a task holds one CPU."""
    stage = factory.build(None)
    if hasattr(stage, "decoder_threads"):
        stage.decoder_threads = 1
    return stage


__all__ = ["ENGINE", "INSTALL_HINT", "RayEngine", "connect", "encode_and_write", "import_ray"]
