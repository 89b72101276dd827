"""Measurement: how many samples of a mixed set the original's rules keep vs aspect and frame buckets.

Not a test, and no timing: it counts. Generates pairs of videos (landscape 16:9, portrait 9:16, square, 4:3,
3:4 and 21:9 ultrawide, with frame counts from 12 to 300; the target has the source's shape and length, as
an edited video does, except a few shorter targets), then applies step 1's own decisions without models:
``validate`` (probe, interval rule, orientation) for the keep/skip outcome, and ``Step1Stage``'s per-sample
planning for the bucket and frame count each kept sample gets. ``--decode`` also decodes every sample through
``Step1Stage.decode`` (what a worker does) and checks that the planned outcome is the real one.
Videos are small (short side 72 px); only their aspect and frame count matter to these rules.

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

from revise_prep.errors import SampleError
from revise_prep.inputs import parse_entries
from revise_prep.pipeline.stage import WorkItem
from revise_prep.pipeline.step1 import Step1Stage
from revise_prep.pipeline.validate import validate
from revise_prep.settings import FrameSettings
from revise_prep.testing.videos import make_video
from revise_prep.video.buckets import PRESETS

#: aspect class -> (width, height) at a short side of 72 px (even sizes for yuv420p)
ASPECTS = {"landscape 16:9": (128, 72), "portrait 9:16": (72, 128), "square": (72, 72), "4:3": (96, 72),
           "3:4": (72, 96), "ultrawide 21:9": (168, 72)}
MIX = {"landscape 16:9": 12, "portrait 9:16": 10, "square": 6, "4:3": 4, "3:4": 3, "ultrawide 21:9": 5}
LENGTHS = [300, 121, 97, 81, 64, 50, 40, 25, 18, 12]  # frames, cycled through each aspect class


def make_set(root: Path, quick: bool) -> tuple[Path, list[str]]:
    """Write the videos and ``pairs.json``; return it and each sample's aspect class."""
    mix = {k: max(1, v // 4) for k, v in MIX.items()} if quick else MIX
    lengths = [min(n, 90) for n in LENGTHS] if quick else LENGTHS
    entries, classes, i = [], [], 0
    for aspect, count in mix.items():
        w, h = ASPECTS[aspect]
        for k in range(count):
            n = lengths[(k * 3 + len(classes)) % len(lengths)]
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
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
