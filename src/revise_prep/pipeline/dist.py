"""Which share of the samples this process owns, from torchrun or SLURM variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RankInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # ranks on this node (they share its CPUs)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's disjoint share: every ``world_size``-th item starting at ``rank``."""
        return list(items[self.rank::self.world_size])


def rank_info(env: Mapping[str, str] | None = None) -> RankInfo:
    """Read RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE (torchrun) or SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID and
    the tasks on this node (srun)."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env:
        rank, world = int(env.get("RANK", 0)), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", rank))
        local_world = int(env.get("LOCAL_WORLD_SIZE", 1))
    elif "SLURM_NTASKS" in env and "SLURM_PROCID" in env:
        rank, world = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
        local = int(env.get("SLURM_LOCALID", 0))
        local_world = slurm_tasks_on_node(env)
    else:
        return RankInfo()
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside world size {world}")
    return RankInfo(rank, world, local, max(1, local_world))


def slurm_tasks_on_node(env: Mapping[str, str]) -> int:
    """SLURM tasks on this node: SLURM_NTASKS_PER_NODE, else this node's entry (SLURM_NODEID) of
    SLURM_TASKS_PER_NODE, whose form is ``2(x3),1`` (2 tasks on each of 3 nodes, then 1); 1 if unknown."""
    if env.get("SLURM_NTASKS_PER_NODE", "").isdigit():
        return int(env["SLURM_NTASKS_PER_NODE"])
    spec, node = env.get("SLURM_TASKS_PER_NODE", ""), int(env.get("SLURM_NODEID", 0) or 0)
    counts: list[int] = []
    for part in filter(None, spec.split(",")):
        tasks, _, times = part.partition("(x")
        if not tasks.isdigit() or (times and not times.rstrip(")").isdigit()):
            return 1
        counts += [int(tasks)] * (int(times.rstrip(")")) if times else 1)
    return counts[node] if node < len(counts) else 1


def resolve_device(name: str | None, info: RankInfo) -> str:
    """``auto``/``cuda`` -> this process's local GPU when CUDA is available; ``auto`` falls back to CPU."""
    import torch

    from revise_prep.errors import InputError

    name = name or "auto"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: CUDA is not available here (torch {torch.__version__}, "
                             f"{'no GPU visible' if torch.version.cuda else 'a build without CUDA'}); "
                             "use --device cpu or auto")
        count = torch.cuda.device_count()
        if name == "cuda":
            return f"cuda:{info.local_rank % max(count, 1)}"
        index = name.partition(":")[2]
        if not index.isdigit() or int(index) >= count:
            raise InputError(f"--device {name}: no such GPU ({count} visible)")
        return name
    try:
        torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise InputError(f"--device {name}: {err}") from None
    return name

