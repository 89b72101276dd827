"""BucketBatchSampler: one shape per batch, every record once per epoch, seeded, sharded like DistributedSampler."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from revise_prep.records import BucketBatchSampler, RecordDataset
from revise_prep.records.atomic import atomic_write_bytes
from revise_prep.records.reports import read_list, write_list
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
    ordered = list(BucketBatchSampler(lists, 4, shuffle=False))  # bucket after bucket, each in list order
    assert sorted(i for b in ordered for i in b) == list(range(19))
    flat = [i for b in ordered for i in b]
    for shape in SIZES:
        mine = [i for i in flat if shape_of(Path(str(again.paths[i]))) == shape]
        assert mine == sorted(mine) and len(mine) == SIZES[shape]


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


# ------------------------------------------------------------------ the trainer's own dataset (ReViSE's way)
class ListFileDataset(torch.utils.data.Dataset):
    """A dataset of the trainer's kind: opens the list file itself, one position per line in file order
    (blank lines included, stripped of blanks), and unpickles each record as given, as ReViSE's does."""

    def __init__(self, list_file):
        with open(list_file) as handle:
            self.lines = [line.strip(" \t\n") for line in handle]

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, i):
        import pickle

        with open(self.lines[i], "rb") as handle:
            return pickle.load(handle)


def substituting_collate(batch):
    """Stacks latents as ReViSE's collate does, including its fallback: odd shapes replaced by a copy of a
    latent of the batch's most common shape (so a mixed batch trains on other samples' latents)."""
    latents = [s["latent_features"] for s in batch]
    common = Counter(t.shape for t in latents).most_common(1)[0][0]
    donors = [t for t in latents if t.shape == common]
    latents = [t if t.shape == common else donors[0].clone() for t in latents]
    return {"prompt": [s["prompt"] for s in batch], "latent_features": torch.stack(latents)}


def write_records(folder: Path, order: list[str]) -> list[str]:
    """One pickled record per entry of ``order`` (a shape name); its latent is filled with its position."""
    dims = {"9x32x48": (3, 4, 6), "9x48x32": (3, 6, 4), "5x32x32": (2, 4, 4)}
    paths = []
    for i, shape in enumerate(order):
        p = folder / f"r{i}_{shape}.pkl"
        atomic_write_bytes(p, dumps({"latent_features": torch.full((16, *dims[shape]), float(i)),
                                     "prompt": f"sample {i}", "t5_emb": [torch.zeros(2, 8)], "frame_num": 9}))
        paths.append(str(p))
    return paths


def bucketed_list(folder: Path, order: list[str], name: str = "train_list.txt") -> Path:
    """A full list in input order (shapes interleaved) plus its per-shape lists, as a bucketed run writes."""
    paths = write_records(folder, order)
    write_list(folder / name, paths)
    for shape in set(order):
        write_list(shape_list_path(folder / name, shape), [p for p, s in zip(paths, order) if s == shape])
    return folder / name


ORDER = ["9x32x48", "5x32x32", "9x48x32", "9x32x48", "9x48x32", "5x32x32", "9x32x48", "9x32x48", "9x48x32",
         "5x32x32", "9x32x48", "9x48x32"]


@pytest.mark.parametrize("workers", [0, 2])
def test_positions_are_the_list_files_lines(tmp_path, workers):
    """The sampler's index i is line i of the list, so a dataset that reads the list itself gets one shape per
    batch and every sample keeps its own latent (with indices into bucket-ordered paths it would not)."""
    full = bucketed_list(tmp_path, ORDER)
    lines = full.read_text().splitlines()
    sampler = BucketBatchSampler(full, batch_size=2, seed=0, drop_last=True)
    loader = DataLoader(ListFileDataset(full), batch_sampler=sampler, num_workers=workers,
                        collate_fn=substituting_collate)
    seen = []
    for batch in loader:
        own = [float(p.split()[1]) for p in batch["prompt"]]
        assert batch["latent_features"][:, 0, 0, 0, 0].tolist() == own  # each latent is its own sample's
        assert len({ORDER[int(i)] for i in own}) == 1
        seen += own
    assert len(set(seen)) == len(seen)  # drop_last: each bucket's odd record is left out (5, 4, 3 -> 4, 4, 2)
    assert Counter(ORDER[int(i)] for i in seen) == {"9x32x48": 4, "9x48x32": 4, "5x32x32": 2}
    assert [str(p) for p in sampler.paths] == lines


def test_a_per_shape_list_a_blank_line_and_several_lists(tmp_path):
    full = bucketed_list(tmp_path, ORDER)
    alone = shape_list_path(full, "9x48x32")
    sampler = BucketBatchSampler(alone, batch_size=2, shuffle=False)
    assert [str(p) for p in sampler.paths] == alone.read_text().splitlines() and list(sampler.buckets) == ["9x48x32"]
    dataset = ListFileDataset(alone)
    assert [dataset[i]["prompt"] for b in sampler for i in b] == [f"sample {i}" for i, s in enumerate(ORDER)
                                                                 if s == "9x48x32"]
    blank = tmp_path / "blank.txt"  # a hand-edited list: a blank line is a position of the trainer's dataset
    lines = full.read_text().splitlines()
    blank.write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n")
    for shape in set(ORDER):
        write_list(shape_list_path(blank, shape), read_list(shape_list_path(full, shape)))
    sampler = BucketBatchSampler(blank, batch_size=1, shuffle=False)
    assert sampler.paths[3] is None and len(sampler.paths) == len(ORDER) + 1
    dataset = ListFileDataset(blank)
    got = [dataset[i]["prompt"] for b in sampler for i in b]
    assert sorted(got) == sorted(f"sample {i}" for i in range(len(ORDER)))
    for b in sampler:
        assert float(dataset[b[0]]["prompt"].split()[1]) == dataset[b[0]]["latent_features"][0, 0, 0, 0]
    other = tmp_path / "more"
    other.mkdir()
    second = bucketed_list(other, ["5x32x32", "9x32x48", "5x32x32"])
    both = BucketBatchSampler([full, second], batch_size=4, shuffle=False)
    concat = torch.utils.data.ConcatDataset([ListFileDataset(full), ListFileDataset(second)])
    assert len(both.paths) == len(concat) == len(ORDER) + 3 and len(both.buckets["5x32x32"]) == 5
    for b in both:
        assert len({tuple(concat[i]["latent_features"].shape) for i in b}) == 1


def test_the_readme_example_runs(tmp_path):
    """README, "Training on the records": the example as written (list path, batch size and workers adapted)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Training on the records"):]
    code = next(block for block in section.split("```python\n")[1:] if "class ListDataset" in block)
    code = code[:code.index("```")]
    full = bucketed_list(tmp_path, ORDER)
    for old, new in (('"data/train/train_list.txt"', repr(str(full))), ("batch_size=8", "batch_size=2"),
                     ("num_workers=4", "num_workers=0"), ("pass  # train on the batch", "seen.append(batch)")):
        assert old in code, old
        code = code.replace(old, new)
    scope = {"seen": []}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own documentation
    assert len(scope["seen"]) == 2 * (5 // 2 + 4 // 2 + 3 // 2)  # two epochs, drop_last
    for batch in scope["seen"]:
        own = [float(p.split()[1]) for p in batch["prompt"]]
        assert batch["latent_features"][:, 0, 0, 0, 0].tolist() == own and len({ORDER[int(i)] for i in own}) == 1
        assert all(t.shape == (2, 8) for t in batch["text_emb"])
