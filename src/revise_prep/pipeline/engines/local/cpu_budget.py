"""How many CPU threads each part of one rank may use: decode workers, and the main process's torch pool.

The share is the machine's real one: the CPUs this process may run on (``os.sched_getaffinity``, which
cgroups/SLURM/taskset narrow), split between the ranks on this node when they all see the same CPUs.
One core is left to the main process (it feeds the GPU); the decode workers split the rest.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CpuBudget:
    """The threads of one rank (see ``cpu_budget``)."""

    share: int  # CPUs this rank may use
    decoder_threads: int  # per decode worker: FFmpeg threads, and the crop/resize pool
    main_threads: int  # torch intra-op threads of the main process


def rank_share(affinity: int, machine: int, local_world: int) -> int:
    """CPUs one rank may use: its affinity mask's size, divided among the ``local_world`` ranks of this node
    unless the mask already is a share of the machine that small (srun/taskset binding each rank to its own
    CPUs: ``affinity * local_world <= machine``). At least 1."""
    affinity, machine, local_world = max(1, affinity), max(1, machine), max(1, local_world)
    if local_world > 1 and affinity * local_world > machine:
        return max(1, affinity // local_world)
    return affinity


def cpu_budget(share: int, workers: int, *, encode_on_cpu: bool, torch_default: int) -> CpuBudget:
    """Split ``share`` CPUs: one for the main process, the rest evenly over ``workers`` decode processes
    (each at least 1; inline decoding, ``workers == 0``, uses the whole share in the main process).

    The main process's torch pool: with a model on the CPU it encodes there, so it gets the share (never more
    than torch's own default, so CPU results keep today's thread count); feeding a GPU it needs one thread.
    """
    share = max(1, share)
    if workers > 0:
        decoder = max(1, (share - 1) // workers)
    else:
        decoder = share
    main = max(1, min(share, torch_default)) if encode_on_cpu else 1
    return CpuBudget(share=share, decoder_threads=decoder, main_threads=main)


def affinity_count() -> int:
    """CPUs this process may run on (all of them where the platform has no affinity call)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def budget_for(workers: int, local_world: int, *, encode_on_cpu: bool, override: int | None = None) -> CpuBudget:
    """This rank's budget from the machine (``override``: the share, from ``--cpu-threads``)."""
    import torch

    share = override if override else rank_share(affinity_count(), os.cpu_count() or 1, local_world)
    return cpu_budget(share, workers, encode_on_cpu=encode_on_cpu, torch_default=_torch_default(torch))


def encodes_on_cpu(stage) -> bool:
    """Whether a model of ``stage`` runs on the CPU (a stage that does not say where its models run counts so)."""
    import torch

    devices = getattr(stage, "encode_devices", None)
    return devices is None or any(torch.device(d).type == "cpu" for d in devices)


def stage_budget(stage, settings, rank) -> CpuBudget:
    """This rank's CPU threads for ``stage`` (``cpu_budget``; ``settings``: ExecutionSettings). Its
    ``main_threads`` is the one rule for the torch threads of the process that encodes, on every engine: the
    local engine's main process, and each Ray encoder actor, which gets the driver's (a Ray worker's own torch
    default is Ray's OMP_NUM_THREADS=1), because CPU kernels round by thread count."""
    return budget_for(settings.num_workers, rank.local_world_size, encode_on_cpu=encodes_on_cpu(stage),
                      override=settings.cpu_threads)


_DEFAULT_THREADS: int | None = None


def _torch_default(torch) -> int:
    """torch's intra-op threads before this module first changed them."""
    global _DEFAULT_THREADS
    if _DEFAULT_THREADS is None:
        _DEFAULT_THREADS = torch.get_num_threads()
    return _DEFAULT_THREADS


def apply_main_threads(budget: CpuBudget) -> None:
    """Set the main process's torch intra-op threads to the budget's (logged once at info level)."""
    import torch

    _torch_default(torch)
    if torch.get_num_threads() != budget.main_threads:
        torch.set_num_threads(budget.main_threads)
    log.info("CPU budget: %d CPU(s) for this rank; %d torch thread(s) in the main process, %d decoder thread(s) "
             "per worker", budget.share, budget.main_threads, budget.decoder_threads)
