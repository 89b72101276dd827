"""Measurement: how many samples of a mixed set the original's rules keep vs aspect and frame buckets, and how
many of them an epoch of training reaches at batch 8 with ``drop_last``, with and without ``--merge-small-buckets``.

Not a test, and no timing: it counts. Generates pairs of videos (landscape 16:9, portrait 9:16, square, 4:3,
3:4 and 21:9 ultrawide, with frame counts from 12 to 300; the target has the source's shape and length, as
an edited video does, except a few shorter targets), then applies step 1's own decisions without models:
``validate`` (probe, interval rule, orientation) for the keep/skip outcome, and ``Step1Stage``'s per-sample
planning for the bucket and frame count each kept sample gets. ``--decode`` also decodes every sample through
``Step1Stage.decode`` (what a worker does) and checks that the planned outcome is the real one.
Videos are small (short side 72 px); only their aspect and frame count matter to these rules.

Epochs: on the same 40 pairs, on a larger set skewed as collected data is (120 pairs, half of them 16:9
landscape) and on that set listed 7 times (840 pairs, each copy with its own instruction), the bucket of every
kept sample comes from the planning code of ``--merge-small-buckets`` (``pipeline/bucket_plan.py``: ``validate``'s
probe, then ``merge_small_buckets``), without merging and with ``--min-bucket-records`` 8 (one batch) and 64 (the
default). Their list file and per-shape lists are written as a run writes them, and the epoch is what
``BucketBatchSampler`` (batch 8, ``drop_last``) yields over them, and what a trainer gets that runs one
``drop_last`` loader per per-shape list and ends each epoch with its shortest loader (Omni-Video's
``finetune_model.py``). With ``--decode`` the larger set's samples are also decoded with their bucket of every
plan (the repeated set's too: same videos) through ``Step1Stage.decode``: the frames have the planned shape.

    .venv/bin/python bench/buckets.py [--out buckets.md] [--decode] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections import Counter
from pathlib import Path

from torch.utils.data import DataLoader

from revise_prep.errors import SampleError
from revise_prep.inputs import parse_entries
from revise_prep.pipeline.bucket_plan import compute_plan
from revise_prep.pipeline.stage import WorkItem
from revise_prep.pipeline.step1 import Step1Stage
from revise_prep.pipeline.validate import validate
from revise_prep.records.reports import write_list
from revise_prep.records.sampler import BucketBatchSampler
from revise_prep.records.shapes import sibling_shape_lists, write_shape_lists
from revise_prep.settings import FrameSettings, RunSettings
from revise_prep.testing.videos import make_video
from revise_prep.video.buckets import PRESETS

#: aspect class -> (width, height) at a short side of 72 px (even sizes for yuv420p)
ASPECTS = {"landscape 16:9": (128, 72), "portrait 9:16": (72, 128), "square": (72, 72), "4:3": (96, 72),
           "3:4": (72, 96), "ultrawide 21:9": (168, 72)}
MIX = {"landscape 16:9": 12, "portrait 9:16": 10, "square": 6, "4:3": 4, "3:4": 3, "ultrawide 21:9": 5}
LENGTHS = [300, 121, 97, 81, 64, 50, 40, 25, 18, 12]  # frames, cycled through each aspect class
#: the larger set, skewed as collected data is: most pairs landscape and long; per class (pairs, frame counts)
SKEWED = {"landscape 16:9": (60, [300, 121, 97, 81, 121, 64, 50]), "portrait 9:16": (24, [121, 97, 64, 40]),
          "square": (12, [121, 64, 40, 25]), "4:3": (8, [97, 50, 25]), "3:4": (6, [97, 40]),
          "ultrawide 21:9": (6, [121, 25, 18]), "too short": (4, [12])}
BATCH = 8
REPEAT = 7  # the skewed set listed this many times: large enough for the default --min-bucket-records 64 (7: its
# counts are not all multiples of the batch)


def make_set(root: Path, quick: bool, skewed: bool = False) -> tuple[Path, list[str]]:
    """Write the videos and ``pairs.json`` (``skewed``: the larger set, in ``root``/skewed); return it and each
    sample's aspect class."""
    if skewed:
        root = root / "skewed"
        mix = {k: max(1, v // 4) if quick else v for k, (v, _) in SKEWED.items()}
    else:
        mix = {k: max(1, v // 4) for k, v in MIX.items()} if quick else MIX
    entries, classes, i = [], [], 0
    for aspect, count in mix.items():
        w, h = ASPECTS.get(aspect, ASPECTS["landscape 16:9"])
        lengths = SKEWED[aspect][1] if skewed else LENGTHS
        lengths = [min(n, 90) for n in lengths] if quick else lengths
        for k in range(count):
            n = lengths[k % len(lengths)] if skewed else lengths[(k * 3 + len(classes)) % len(lengths)]
            n_tgt = n if i % 7 else max(12, n // 2)  # every 7th target is shorter than its source
            make_video(root / f"s{i}.mp4", frames=n, width=w, height=h, seed=i, preset="ultrafast")
            make_video(root / f"t{i}.mp4", frames=n_tgt, width=w, height=h, seed=1000 + i, preset="ultrafast")
            entries.append({"source_video_path": f"s{i}.mp4", "target_video_path": f"t{i}.mp4",
                            "instruction": f"Replace the moving shapes with birds, sample {i}."})
            classes.append(aspect)
            i += 1
    path = root / "pairs.json"
    path.write_text(json.dumps(entries))
    return path, classes


def planned_buckets(pairs: Path, root: Path, frames: FrameSettings, kept: set[int]) -> dict[int, str]:
    """The bucket (``FxHxW``) step 1 chooses for each kept sample, from its own planning code."""
    stage = Step1Stage(frames)
    samples, _ = parse_entries(pairs, str(root))
    shapes = {}
    for s in samples:
        if s.index in kept:
            item = WorkItem(s.index, f"s{s.index}", None, s)
            stage._sample_frames(item)  # noqa: SLF001 - the planning step of Step1Stage.decode
            b = item.notes["bucket"]
            shapes[s.index] = f"{b['frame_num']}x{b['size'][0]}x{b['size'][1]}"
    return shapes


def decoded_outcomes(pairs: Path, root: Path, frames: FrameSettings) -> dict[int, str | None]:
    """Decode every sample as a worker does: None when it decodes, else the reason."""
    stage = Step1Stage(frames, decoder_threads=1)
    samples, _ = parse_entries(pairs, str(root))
    out: dict[int, str | None] = {}
    for s in samples:
        try:
            stage.decode(WorkItem(s.index, f"s{s.index}", None, s))
            out[s.index] = None
        except SampleError as err:
            out[s.index] = err.reason
    return out


def repeat_set(pairs: Path, copies: int) -> Path:
    """The same pairs listed ``copies`` times, each copy with its own instruction (not duplicates): a larger
    input with the same mix, at no cost in videos."""
    entries = json.loads(pairs.read_text())
    out = pairs.with_name(f"pairs_x{copies}.json")
    out.write_text(json.dumps([{**e, "instruction": f"{e['instruction']} (copy {k})"}
                               for k in range(copies) for e in entries]))
    return out


def plans(pairs: Path, root: Path, frames: FrameSettings) -> dict[str, dict[int, str]]:
    """Every kept sample's bucket ("FxHxW"), without merging and merged at each --min-bucket-records, from the
    planning code of --merge-small-buckets."""
    out: dict[str, dict[int, str]] = {}
    for minimum in (BATCH, 64):
        run = RunSettings(input=str(pairs), output_dir="-", video_root=str(root), min_bucket_records=minimum,
                          merge_small_buckets=True)
        plan = compute_plan(run, frames)
        out.setdefault("without merging", {i: plan.moved.get(i, b) for i, b in plan.samples.items()})
        out[f"--merge-small-buckets --min-bucket-records {minimum}"] = plan.samples
    return out


def epoch(buckets: dict[int, str], folder: Path) -> dict[str, int]:
    """Write the list file and per-shape lists a run writes for these samples (one record path each), then count
    one epoch: BucketBatchSampler over the full list, and one drop_last loader per per-shape list."""
    folder.mkdir(parents=True)
    order = sorted(buckets)
    paths = [str(folder / f"r{i}.pkl") for i in order]
    write_list(folder / "train_list.txt", paths)
    write_shape_lists(folder / "train_list.txt", [(p, buckets[i]) for p, i in zip(paths, order)])
    sampler = BucketBatchSampler(folder / "train_list.txt", BATCH, seed=0, drop_last=True)
    batches = list(sampler)
    loaders = [DataLoader(range(len(BucketBatchSampler(p, 1).paths)), batch_size=BATCH, drop_last=True)
               for p in sibling_shape_lists(folder / "train_list.txt").values()]
    steps = min((len(loader) for loader in loaders), default=0)  # the shortest loader ends the epoch
    return {"buckets": len(sampler.buckets), "small": sum(len(v) < BATCH for v in sampler.buckets.values()),
            "batches": len(batches), "samples": sum(map(len, batches)), "steps": steps,
            "step_samples": steps * BATCH * len(loaders)}


def decoded_shapes_match(pairs: Path, root: Path, frames: FrameSettings, planned: dict[str, dict[int, str]]) -> int:
    """Decode every kept sample with each bucket a plan gives it, as a worker does; the frames must have that
    shape (frames x height x width). Returns how many decodes were checked."""
    stage = Step1Stage(frames, decoder_threads=1)
    samples = {s.index: s for s in parse_entries(pairs, str(root))[0]}
    todo = sorted({(i, b) for plan in planned.values() for i, b in plan.items()})
    for i, bucket in todo:
        item = WorkItem(i, f"s{i}", None, samples[i], shape=bucket)
        clips = stage.decode(item).data
        for clip in clips.values():
            f, _, h, w = clip.frames.shape
            assert f"{f}x{h}x{w}" == bucket, (i, bucket, clip.frames.shape)
    return len(todo)


def epoch_table(sets: dict[str, tuple[int, dict[str, dict[int, str]]]], root: Path) -> list[str]:
    lines = [f"| set | kept | configuration | buckets (< {BATCH}) | batches | samples | of kept | of input | "
             f"shortest per-shape loader: steps, samples |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for k, (name, (pairs, planned)) in enumerate(sets.items()):
        for j, (config, buckets) in enumerate(planned.items()):
            e = epoch(buckets, root / f"epoch{k}-{j}")
            kept = len(buckets)
            lines.append(f"| {name} | {kept} | {config} | {e['buckets']} ({e['small']}) | {e['batches']} | "
                         f"{e['samples']} | {e['samples'] / kept:.0%} | {e['samples'] / pairs:.0%} | "
                         f"{e['steps']}, {e['step_samples']} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--decode", action="store_true", help="also decode every sample (slow at 480p)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    configs = {"original (81 / 3 / 480x832)": FrameSettings(),
               "--buckets wan-480p --frame-buckets 81,49,33,17":
                   FrameSettings(frame_num=81, buckets=PRESETS["wan-480p"], frame_buckets=(81, 49, 33, 17))}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pairs, classes = make_set(root, args.quick)
        results = {name: validate(pairs, frames, video_root=root, workers=2) for name, frames in configs.items()}
        kept = {name: {c.index for c in r.samples if c.status in ("ok", "warning")} for name, r in results.items()}
        names = list(configs)
        shapes = planned_buckets(pairs, root, configs[names[1]], kept[names[1]])
        checked = ""
        if args.decode:
            for name, frames in configs.items():
                real = {i for i, reason in decoded_outcomes(pairs, root, frames).items() if reason is None}
                assert real == kept[name], (name, sorted(real ^ kept[name]))
            checked = " Every sample was also decoded through `Step1Stage.decode`: same outcomes."
        bucketed = configs[names[1]]
        skewed, skewed_classes = make_set(root, args.quick, skewed=True)
        copies = 2 if args.quick else REPEAT
        repeated = repeat_set(skewed, copies)
        sets = {f"mixed ({len(classes)} pairs)": (len(classes), plans(pairs, root, bucketed)),
                f"skewed ({len(skewed_classes)} pairs)": (len(skewed_classes), plans(skewed, skewed.parent, bucketed)),
                f"skewed x{copies} ({copies * len(skewed_classes)} pairs)":
                    (copies * len(skewed_classes), plans(repeated, skewed.parent, bucketed))}
        epochs = epoch_table(sets, root)
        merged_into = {f"{name}, {config}": Counter(buckets.values()) for name in list(sets)[1:]
                       for config, buckets in sets[name][1].items()}
        decoded = ""
        if args.decode:
            n = len(skewed_classes)  # the copies' buckets, on the original entries (same videos, same rule)
            planned = {**sets[list(sets)[1]][1], **{f"x{copies} {config}": {i % n: b for i, b in buckets.items()}
                                                    for config, buckets in sets[list(sets)[2]][1].items()}}
            count = decoded_shapes_match(skewed, skewed.parent, bucketed, planned)
            decoded = (f" The skewed set's samples were decoded through `Step1Stage.decode` with each bucket a plan "
                       f"gives them, the repeated set's plans included ({count} decodes): the frames have the planned "
                       f"shape.")
    n = len(classes)
    lines = [f"{n} generated pairs (short side 72 px; frame counts {min(LENGTHS)}-{max(LENGTHS)}; every 7th target "
             f"half as long as its source). Outcomes from step 1's own rules (`validate` + `Step1Stage` planning)."
             + checked, "", f"| aspect | samples | kept: {names[0]} | kept: {names[1]} |", "|---|---:|---:|---:|"]
    for aspect in MIX:
        idx = [i for i, c in enumerate(classes) if c == aspect]
        if idx:
            lines.append(f"| {aspect} | {len(idx)} | {len(kept[names[0]] & set(idx))} | "
                         f"{len(kept[names[1]] & set(idx))} |")
    lines.append(f"| **all** | {n} | **{len(kept[names[0]])}** | **{len(kept[names[1]])}** |")
    for name, r in results.items():
        reasons = Counter(c.reason for c in r.samples if c.status in ("skipped", "failed"))
        lines.append(f"\nlost with {name}: " + (", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"))
    lines.append("\nbuckets chosen (frames x height x width): "
                 + ", ".join(f"{s} {c}" for s, c in sorted(Counter(shapes.values()).items(), key=lambda kv: -kv[1])))
    lines += ["", f"An epoch at batch {BATCH} with drop_last (`--buckets wan-480p --frame-buckets 81,49,33,17`): "
              f"`BucketBatchSampler` over the full list, and one `DataLoader(drop_last=True)` per per-shape list with "
              f"the epoch ended by the shortest (Omni-Video's `finetune_model.py`). Buckets from the planning code of "
              f"`--merge-small-buckets` (`validate`'s probe + `merge_small_buckets`)." + decoded, "", *epochs]
    for config, tally in merged_into.items():
        lines.append(f"\n{config}: " + ", ".join(f"{s} {c}" for s, c in sorted(tally.items(),
                                                                                        key=lambda kv: -kv[1])))
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
