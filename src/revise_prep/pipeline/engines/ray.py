"""The Ray engine: a Ray Data pipeline that decodes on CPU tasks anywhere and encodes on GPU (or CPU) actors.

The driver plans exactly as the local engine (the resume check: ``plan_work``) and finishes exactly
as it (``finish_run``: this run's report, then the merged list, failures and summary), as rank 0 of a
world of 1, so a folder started with one engine resumes with the other.
Between the two, every item to do is one row: a CPU task runs ``stage.decode`` (the stage ships
without models) in a supervised child process, as the local engine's workers (``decode_supervised``: a hang
past ``--decode-timeout`` or a death costs only the sample, ``decode_timeout`` / ``decoder_crashed``); an
encoder actor, which loads the models itself through the step's :class:`StageFactory`, runs ``stage.encode``
(the prompts of the samples waiting in it go through umT5 together) and writes the record as the local engine
does (``write_record``), and the driver collects one outcome per input index. A killed worker or node is
redone by Ray's task and actor retries, a bounded number of times (:data:`RETRIES`); a redone write replaces
the same file with the same bytes, and an index reported twice is counted once. A sample whose task or actor
process dies :data:`~revise_prep.pipeline.inflight.MAX_DEATHS` times is failed as ``crashed_repeatedly``
(the in-flight journal's rule, kept with :class:`~revise_prep.pipeline.inflight.Attempts`), so a poison
sample is not retried without end, and the next run of either engine keeps it out.
"""

from __future__ import annotations

import inspect
import logging
import os
import pickle
import threading
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from revise_prep.errors import CRASHED_REPEATEDLY, ENCODE_ERROR, WRITE_ERROR, InputError, SampleError
from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.engines.base import failure_outcome, finish_run, plan_work, with_shape
from revise_prep.pipeline.engines.local.cpu_budget import encodes_on_cpu, stage_budget
from revise_prep.pipeline.engines.local.workers import PoolStats, decode_supervised
from revise_prep.pipeline.engines.writer import FatalWriteError, write_record
from revise_prep.pipeline.inflight import MAX_DEATHS, Attempts
from revise_prep.pipeline.locks import ShareLock
from revise_prep.pipeline.progress import Notices, Progress
from revise_prep.pipeline.stage import Decoded, Stage, StageFactory, WorkItem, describer, stage_layout
from revise_prep.records.atomic import clean_temporaries
from revise_prep.records.reports import Outcome, encode_notes
from revise_prep.records.shapes import record_shape
from revise_prep.settings import EngineSettings, ExecutionSettings

log = logging.getLogger(__name__)

INSTALL_HINT = "--engine ray needs Ray Data: pip install 'revise-prep[ray]'"
ENCODER_CPUS = 1  # CPUs an encoder actor reserves (besides its GPU share)
#: Memory a decode task reserves: its process measured 419 MiB (USS, Ray Data's count) with small clips (Python,
#: torch, PyAV), two 81x480x832 uint8 clips add 194 MB and their pickle as much again; with Ray's 25 % headroom
#: ~1 GiB (512 MiB made Ray Data warn that the tasks use more than they ask for).
DECODE_MEMORY = 1024 ** 3
#: Ray's retries of one decode task or one encoder call after its process died (Ray Data's default is without
#: end). A poison sample uses MAX_DEATHS of them before it is failed as crashed_repeatedly; the rest is room
#: for a sample that was only waiting in a process killed by another sample, or by a lost node.
RETRIES = 2 * MAX_DEATHS + 1
ACTOR_RESTARTS = 8 * RETRIES  # restarts of one encoder actor over the run (each loads the models again)
#: Samples an encoder actor holds at once (calls in threads, where Ray Data can: ``_actor_pool``): their prompts
#: go through umT5 together, up to 8 (the local engine's batch); the models encode one sample at a time.
CALLS_PER_ACTOR = 8


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


def ray_console_handlers() -> list[logging.Handler]:
    """The handlers Ray Data's logging config gives its logger for the console (not its session-log files)."""
    return [h for h in logging.getLogger("ray.data").handlers
            if isinstance(h, logging.StreamHandler) and type(h).__module__.startswith("ray.")]


def not_progress_notice(record: logging.LogRecord) -> bool:
    """False for Ray Data's notice that progress bars are off (this engine turns them off, and logs progress)."""
    return "Progress bars disabled" not in record.getMessage()


def quiet_ray_data() -> None:
    """Ray Data's console lines about each dataset (its plan, start and finish, at INFO) go to its session log
    only, unless ``-v``; its warnings still reach the console."""
    if log.isEnabledFor(logging.DEBUG):
        return
    for handler in ray_console_handlers():
        handler.setLevel(max(handler.level, logging.WARNING))
        if not_progress_notice not in handler.filters:
            handler.addFilter(not_progress_notice)


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


def _refused(name: str, earlier: int, here: int) -> SampleError | None:
    """``crashed_repeatedly`` when the processes holding ``name`` died MAX_DEATHS times (``earlier`` runs'
    deaths, 0 with --retry-crashed, plus ``here`` in this run), else None."""
    if earlier + here < MAX_DEATHS:
        return None
    return SampleError(CRASHED_REPEATEDLY, f"{name}: the process holding it died {earlier + here} times "
                                           f"({here} in this run); not tried again (--retry-crashed tries it)")


class _Decode:
    """Ray Data task body: one work item (pickled) -> its Decoded (pickled), on any node's CPUs, decoded in a
    supervised child process; the task's own process is marked as holding the sample (``attempts``)."""

    def __init__(self, stage: Stage, timeout: float | None, attempts: Attempts) -> None:
        self.stage = stage
        self.timeout = timeout
        self.attempts = attempts

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        _apply_threads(1)
        item = pickle.loads(row["item"])
        stats = PoolStats()
        with self.attempts.hold(item.name, "decode") as died:
            refused = _refused(item.name, row["deaths"], died)
            if refused is not None:
                decoded = Decoded(item, error=refused)
            else:
                decoded, stats = decode_supervised(self.stage.decode, item, self.timeout)
        return {"index": row["index"], "deaths": row["deaths"], "stats": pickle.dumps(stats.as_dict()),
                "decoded": pickle.dumps(decoded, protocol=pickle.HIGHEST_PROTOCOL)}


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
    """Ray Data actor: loads the step's models once (on its GPU, or the CPU), then encodes and writes samples.
    Up to CALLS_PER_ACTOR calls wait in it at once: each adds its prompts to the stage's batching
    (``prepare``), then they take turns on the models; only the sample being encoded is marked as held."""

    def __init__(self, factory: StageFactory, threads: int, attempts: Attempts) -> None:
        self.attempts = attempts
        self.stage = factory.build(RankInfo())  # Ray gives the actor its GPU(s) as cuda:0..
        # the torch threads of the local engine's main process (the driver's CPU budget: the same bits on the
        # CPU), or one when the models are on a GPU, as there
        self.threads = threads if encodes_on_cpu(self.stage) else 1
        self.models = threading.Lock()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        decoded = [pickle.loads(blob) for blob in batch["decoded"]]
        if hasattr(self.stage, "prepare"):  # step 1: these prompts join the next umT5 batch
            self.stage.prepare([d.item for d in decoded if d.error is None])
        results = []
        for d, deaths, stats in zip(decoded, batch["deaths"], batch["stats"]):
            with self.models:
                _apply_threads(self.threads)  # Ray runs calls in threads of its own
                with self.attempts.hold(d.item.name, "encode") as died:
                    refused = _refused(d.item.name, int(deaths), died)
                    if refused is not None:
                        d = Decoded(d.item, error=refused)
                    results.append({**encode_and_write(self.stage, d), "stats": pickle.loads(stats)})
        return {"index": np.asarray(batch["index"]),
                "result": np.array([pickle.dumps(r) for r in results], dtype=object)}


def _apply_threads(threads: int) -> None:
    """Set this thread's torch intra-op threads (Ray runs calls in threads started before any setting)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _actor_pool(actors: int):
    """A fixed pool (one actor per GPU): models load once per actor, and every GPU works from the start; its
    actors take CALLS_PER_ACTOR calls at once where this Ray can run them in threads (else one)."""
    from ray.data import ActorPoolStrategy

    if {"max_concurrent_calls_per_actor", "enable_true_multi_threading"} <= set(
            inspect.signature(ActorPoolStrategy).parameters):
        return ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=CALLS_PER_ACTOR,
                                 max_concurrent_calls_per_actor=CALLS_PER_ACTOR, enable_true_multi_threading=True)
    log.warning("ray: this Ray Data runs one call per actor at a time: prompts are encoded one by one")
    return ActorPoolStrategy(size=actors)


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
    from ray.data import DataContext

    rank = RankInfo()
    actor_args, actors = encoder_resources(engine, ray.cluster_resources())
    start = time.perf_counter()
    stage = factory.build(None)  # no models: its signature comes from the settings and the checkpoints' identities
    describe = describer(stage)
    notices = Notices(log)
    plan = plan_work(stage, items, out, rank, settings, notices)
    outcomes, todo = plan.outcomes, plan.todo
    by_index = {item.index: item for item in todo}
    got: dict[int, Outcome] = {}
    reliability: Counter = Counter()
    attempts = Attempts(stage_layout(stage, out).meta).create()
    try:
        if todo:
            ctx = DataContext.get_current()
            ctx.enable_progress_bars = False
            quiet_ray_data()
            ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(
                object_store_memory=engine.decoded_gb * 1024 ** 3)
            rows = [{"index": it.index, "item": pickle.dumps(it),
                     "deaths": 0 if settings.retry_crashed else plan.journal.deaths.get(it.name, 0)} for it in todo]
            ds = ray.data.from_items(rows, override_num_blocks=len(rows))  # one item per task: work is pulled
            # Ray retries a task whose process died and restarts an actor (retrying its calls), RETRIES times: a
            # lost worker or node costs time, never a sample. The decode tasks' memory reservation also keeps
            # Ray Data from fusing them into the encoder actors: decoding stays on CPU tasks, anywhere.
            threads = stage_budget(None, settings, rank).main_threads  # an encoder on the CPU, as a world of one
            with warnings.catch_warnings():  # Ray >= 2.60 deprecates retries given this way, and names no other yet
                warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
                ds = ds.map(_Decode(_decoding_stage(factory), settings.decode_timeout, attempts), num_cpus=1,
                            memory=DECODE_MEMORY, max_retries=RETRIES)
                ds = ds.map_batches(_Encoder, fn_constructor_kwargs={"factory": factory, "threads": threads,
                                                                     "attempts": attempts},
                                    batch_size=1, compute=_actor_pool(actors), max_restarts=ACTOR_RESTARTS,
                                    max_task_retries=RETRIES, **actor_args)
            log.info("ray: %d sample(s) to do on %d encoder actor(s) (%s each, %d torch threads)", len(todo), actors,
                     ", ".join(f"{k}={v:g}" for k, v in actor_args.items()), threads)
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
                    reliability.update(result.get("stats") or {})
                    if got[index].status == "done":
                        plan.index.add(item.path, plan.sig, result.get("shape"), encode_notes(result.get("notes")))
                        plan.journal.end(item.name)  # ended normally: earlier deaths are forgiven
                    else:  # (crashed_repeatedly keeps its deaths)
                        notices.sample(item.name, result["error"], "%s: %s: %s", item.name or index,
                                       got[index].reason, got[index].message)
                        plan.journal.end(item.name, got[index].status, got[index].reason)
                    bar.update(1)
            finally:
                bar.close()
    finally:
        notices.flush()
        try:
            forgiven = {o.name for o in got.values() if o.reason != CRASHED_REPEATEDLY}
            deaths = attempts.deaths({o.name for o in got.values()})
            plan.journal.died({n: k for n, k in deaths.items() if n not in forgiven})
            reliability["ray_process_deaths"] = sum(deaths.values())
        finally:
            attempts.remove()
            plan.close()
            clean_temporaries(out, {it.path.name for it in todo})  # a killed actor's half-written temporary
    missing = sorted(set(by_index) - set(got))
    if missing:
        raise RuntimeError(f"ray: no result for sample(s) {missing[:10]}; re-run the same command to resume")
    reliability["quarantined"] = plan.quarantined + sum(o.reason == CRASHED_REPEATEDLY for o in got.values())
    return finish_run(stage, out, rank, outcomes + list(got.values()), time.perf_counter() - start, settings,
                      dict(reliability), processed=len(got))


def _decoding_stage(factory: StageFactory) -> Stage:
    """The stage the decode tasks run (no models): one decoder thread each, as a task holds one CPU."""
    stage = factory.build(None)
    if hasattr(stage, "decoder_threads"):
        stage.decoder_threads = 1
    return stage


__all__ = ["ENGINE", "INSTALL_HINT", "RayEngine", "connect", "encode_and_write", "import_ray"]
