"""BucketBatchSampler: one shape per batch, every record once per epoch, seeded, sharded like DistributedSampler."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from revise_prep.records import BucketBatchSampler, RecordDataset
from revise_prep.records.atomic import atomic_write_bytes
from revise_prep.records.reports import write_list
from revise_prep.records.safe_pickle import dumps
from revise_prep.records.shapes import shape_list_path

SIZES = {"9x32x48": 11, "9x48x32": 5, "5x32x32": 3}  # records per shape


@pytest.fixture()
def lists(tmp_path) -> Path:
    """A full list of 19 (fake) record paths plus its per-shape lists; each path names its shape."""
    full, per = [], {}
    for shape, n in SIZES.items():
        per[shape] = [str(tmp_path / f"r{i}_{shape}.pkl") for i in range(n)]
        full += per[shape]
    full = full[::2] + full[1::2]  # input order interleaves the shapes
    write_list(tmp_path / "train_list.txt", full)
    for shape, paths in per.items():
        write_list(shape_list_path(tmp_path / "train_list.txt", shape), [p for p in full if p in paths])
    return tmp_path / "train_list.txt"


def shape_of(path: Path) -> str:
    return path.stem.split("_", 1)[1]


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_batches_are_homogeneous_and_complete(lists, batch_size):
    sampler = BucketBatchSampler(lists, batch_size, seed=3)
    assert len(sampler.paths) == 19
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert all(len({shape_of(sampler.paths[i]) for i in b}) == 1 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(19))  # every record exactly once
    short = Counter(shape_of(sampler.paths[b[0]]) for b in batches if len(b) < batch_size)
    assert short == Counter(s for s, n in SIZES.items() if n % batch_size)  # only each bucket's last batch
    mixed = [shape_of(sampler.paths[b[0]]) for b in batches]
    if batch_size == 1:  # shuffled across buckets, not bucket after bucket
        assert mixed != sorted(mixed, key=list(SIZES).index)


def test_drop_last_and_the_seed(lists):
    sampler = BucketBatchSampler(lists, 4, seed=0, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 11 // 4 + 5 // 4 + 3 // 4 and all(len(b) == 4 for b in batches)
    again = BucketBatchSampler(lists, 4, seed=0, drop_last=True)
    assert list(again) == batches
    again.set_epoch(1)
    assert list(again) != batches and sorted(map(len, again)) == sorted(map(len, batches))
    assert list(BucketBatchSampler(lists, 4, seed=1, drop_last=True)) != batches
    ordered = list(BucketBatchSampler(lists, 4, shuffle=False))
    assert [i for b in ordered for i in b] == list(range(19))


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_split_the_epoch(lists, drop_last):
    world = 3
    shards = [list(BucketBatchSampler(lists, 2, seed=5, drop_last=drop_last, rank=r, world_size=world))
              for r in range(world)]
    counts = {len(s) for s in shards}
    assert len(counts) == 1  # every rank runs the same number of steps
    assert len(BucketBatchSampler(lists, 2, drop_last=drop_last, rank=0, world_size=world)) == counts.pop()
    single = list(BucketBatchSampler(lists, 2, seed=5, drop_last=drop_last))
    seen = Counter(tuple(b) for s in shards for b in s)
    assert set(seen) <= {tuple(b) for b in single}  # the ranks split the single-process epoch
    if not drop_last:  # all of the epoch is covered; only padding repeats a batch
        assert {tuple(b) for b in single} <= set(seen) and sum(seen.values()) - len(single) < world
    else:
        assert all(n == 1 for n in seen.values()) and len(single) - sum(seen.values()) < world
    with pytest.raises(ValueError):
        BucketBatchSampler(lists, 2, rank=3, world_size=3)


def test_several_lists_and_a_plain_list(lists, tmp_path):
    extra = tmp_path / "other" / "ar_features.txt"  # a run without buckets: no per-shape lists, one bucket
    extra.parent.mkdir()
    write_list(extra, [str(tmp_path / f"p{i}_plain.pkl") for i in range(4)])
    alone = shape_list_path(lists, "9x48x32")
    sampler = BucketBatchSampler([lists, extra, alone], 3, seed=0)
    assert len(sampler.paths) == 19 + 4 + 5  # the same shape from two lists is one bucket
    assert len(sampler.buckets) == 4 and len(sampler.buckets["9x48x32"]) == 10
    assert all(len({shape_of(sampler.paths[i]) for i in b}) == 1 for b in sampler)


def test_with_a_dataloader_and_real_records(tmp_path):
    paths = {}
    for shape, (f, h, w) in {"9x32x48": (3, 4, 6), "5x32x32": (2, 4, 4)}.items():
        paths[shape] = []
        for i in range(3):
            p = tmp_path / f"r{i}_{shape}.pkl"
            atomic_write_bytes(p, dumps({"latent_features": torch.full((16, f, h, w), float(i)), "prompt": "p",
                                         "t5_emb": [torch.zeros(2, 8)], "frame_num": 9}))
            paths[shape].append(str(p))
    write_list(tmp_path / "train_list.txt", paths["9x32x48"] + paths["5x32x32"])
    for shape, ps in paths.items():
        write_list(shape_list_path(tmp_path / "train_list.txt", shape), ps)
    sampler = BucketBatchSampler(tmp_path / "train_list.txt", batch_size=3, seed=0)
    loader = DataLoader(RecordDataset(sampler.paths), batch_sampler=sampler,
                        collate_fn=lambda b: torch.stack([s["latent_features"] for s in b]))
    shapes = sorted(tuple(batch.shape) for batch in loader)
    assert shapes == [(3, 16, 2, 4, 4), (3, 16, 3, 4, 6)]
    assert RecordDataset(sampler.paths)[0]["text_emb"].shape == (2, 8)  # iter_dataset's key handling
