"""Training-side batching over bucketed data: every batch holds records of one shape.

ReViSE's collate stacks tensors by key and, when shapes differ inside a batch, puts copies of other samples'
latents in place of the odd ones (it logs an error and trains on the wrong pairs). :class:`BucketBatchSampler`
never mixes shapes, and its indices are positions in the list file it is given, so it batches any dataset that
reads that list in file order: ReViSE's ``ReviseVideoDataset(list_file)``, :class:`RecordDataset`, your own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from revise_prep.records.reader import load_training_sample
from revise_prep.records.reports import read_list_paths, resolve_list_line
from revise_prep.records.shapes import shape_of_list, sibling_shape_lists

__all__ = ["BucketBatchSampler", "RecordDataset", "list_positions"]


class RecordDataset(Dataset):
    """Map-style dataset over record paths; item ``i`` is record ``i`` as training sees it (like ``iter_dataset``)."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return load_training_sample(self.paths[i])


def _lines(list_file: Path) -> list[str]:
    """The list's lines as ReViSE's dataset reads them: every line is a position, stripped of blanks."""
    with open(list_file, encoding="utf-8") as handle:
        return [line.strip(" \t\n") for line in handle]


def list_positions(list_file: str | Path) -> list[tuple[Path | None, str | None]]:
    """(record path, bucket) at each position of a list file, in file order (None, None for a blank line).

    A per-shape list (``<stem>.FxHxW.txt``) is its shape; a full list takes each line's shape from the
    per-shape lists beside it; a line in none of them (or a list without them) gets ``"list:<file>"``.
    """
    list_file = Path(list_file)
    own = shape_of_list(list_file)
    shape_of: dict[str, str] = {}
    if own is None:
        for shape, sibling in sibling_shape_lists(list_file).items():
            shape_of.update((os.path.abspath(p), shape) for p in read_list_paths(sibling))
    fallback = f"list:{list_file}"
    positions: list[tuple[Path | None, str | None]] = []
    for line in _lines(list_file):
        if not line:
            positions.append((None, None))
            continue
        path = resolve_list_line(line, list_file)
        positions.append((path, own or shape_of.get(os.path.abspath(path), fallback)))
    return positions


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of positions in the list file(s), each from one bucket; shuffled within and across buckets by
    ``seed`` + epoch (:meth:`set_epoch`), like ``DistributedSampler`` split over ``world_size`` ranks.

    Index ``i`` is line ``i`` of the list file, so the batches fit any dataset built from the same list that
    reads it in file order (ReViSE's included); several lists are numbered one after the other, as a
    ``ConcatDataset`` of one dataset per list. :attr:`paths` holds the record at each position and
    :attr:`buckets` the positions of each bucket. A full list is split by the per-shape lists beside it
    (``<stem>.FxHxW.txt``); a per-shape list is one bucket, and so is a list without per-shape lists.

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
        self.paths: list[Path | None] = []  # the record at each position (None for a blank line)
        buckets: dict[str, list[int]] = {}  # bucket -> positions
        for list_file in list_files:
            for path, bucket in list_positions(list_file):
                if bucket is not None:
                    buckets.setdefault(bucket, []).append(len(self.paths))
                self.paths.append(path)
        self.buckets = dict(sorted(buckets.items()))

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
