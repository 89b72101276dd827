"""Training-side batching over bucketed data: every batch holds records of one shape.

ReViSE's collate stacks tensors by key and silently substitutes other samples' tensors when shapes differ
inside a batch; :class:`BucketBatchSampler` never mixes shapes. Use it as a DataLoader's ``batch_sampler``
over :class:`RecordDataset` (the record loader of :func:`~revise_prep.records.reader.iter_dataset`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from revise_prep.records.reader import load_training_sample
from revise_prep.records.reports import read_list_paths
from revise_prep.records.shapes import shape_of_list, sibling_shape_lists

__all__ = ["BucketBatchSampler", "RecordDataset"]


class RecordDataset(Dataset):
    """Map-style dataset over record paths; item ``i`` is record ``i`` as training sees it (like ``iter_dataset``)."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return load_training_sample(self.paths[i])


def _groups(list_files: Sequence[str | Path]) -> dict[str, list[Path]]:
    """Record paths by bucket: a per-shape list (``<stem>.FxHxW.txt``) is its shape; a full list with per-shape
    lists beside it is read through those; any other list is one bucket of its own (one run, one shape)."""
    groups: dict[str, list[Path]] = {}
    for list_file in map(Path, list_files):
        shape = shape_of_list(list_file)
        siblings = {} if shape else sibling_shape_lists(list_file)
        parts = {shape: list_file} if shape else (siblings or {f"list:{list_file}": list_file})
        for key, path in parts.items():
            groups.setdefault(key, []).extend(read_list_paths(path))
    return groups


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices into :attr:`paths`, each from one bucket; shuffled within and across buckets by
    ``seed`` + epoch (:meth:`set_epoch`), like ``DistributedSampler`` split over ``world_size`` ranks.

    ``drop_last``: drop each bucket's incomplete last batch, and the batches that do not divide evenly among
    the ranks; otherwise every record is in one batch per epoch and batches from the start are repeated so
    that every rank gets the same number (as ``DistributedSampler`` pads). ``rank``/``world_size`` default to
    ``torch.distributed``'s when it is initialised, else 0 and 1.
    """

    def __init__(self, list_files: str | Path | Sequence[str | Path], batch_size: int, *, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False, rank: int | None = None,
                 world_size: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        if isinstance(list_files, (str, Path)):
            list_files = [list_files]
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.world_size = world_size if world_size is not None else (torch.distributed.get_world_size() if dist else 1)
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if dist else 0)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in 0..{self.world_size - 1}")
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.epoch = 0
        self.paths: list[Path] = []
        self.buckets: dict[str, list[int]] = {}  # bucket -> indices into ``paths``
        for key, paths in sorted(_groups(list_files).items()):
            self.buckets[key] = list(range(len(self.paths), len(self.paths) + len(paths)))
            self.paths.extend(paths)

    def set_epoch(self, epoch: int) -> None:
        """Another shuffle for each epoch (call before iterating, on every rank with the same value)."""
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        batches: list[list[int]] = []
        for indices in self.buckets.values():
            order = [indices[i] for i in torch.randperm(len(indices), generator=g)] if self.shuffle else indices
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g)]
        if self.drop_last:
            return batches[:len(batches) - len(batches) % self.world_size]
        if batches and len(batches) % self.world_size:
            need = self.world_size - len(batches) % self.world_size
            batches += (batches * (need // len(batches) + 1))[:need]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._all_batches()[self.rank::self.world_size]

    def __len__(self) -> int:
        full = sum(len(i) // self.batch_size for i in self.buckets.values())
        total = full if self.drop_last else sum(-(-len(i) // self.batch_size) for i in self.buckets.values())
        return total // self.world_size if self.drop_last else -(-total // self.world_size)
