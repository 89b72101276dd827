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

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's disjoint share: every ``world_size``-th item starting at ``rank``."""
        return list(items[self.rank::self.world_size])


def rank_info(env: Mapping[str, str] | None = None) -> RankInfo:
    """Read RANK/WORLD_SIZE/LOCAL_RANK (torchrun) or SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID (srun)."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env:
        rank, world = int(env.get("RANK", 0)), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", rank))
    elif "SLURM_NTASKS" in env and "SLURM_PROCID" in env:
        rank, world = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
        local = int(env.get("SLURM_LOCALID", 0))
    else:
        return RankInfo()
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside world size {world}")
    return RankInfo(rank, world, local)


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

