"""Benchmark: decoding with unwanted non-reference H.264 frames skipped vs decoding every frame.

Not a test. Reads the same videos both ways, interleaved, for step 1 (``read_clip`` to uint8, as a worker
does) and step 2 (``load_ar_frames``, the AR model's 8 frames); prints seconds per group (median) and the ratio,
and asserts that both ways give identical frames. Inputs: the ReViSE example videos from
``../shared/fixtures/reference`` when present (real footage, about half the frames non-reference) and generated
720p videos of moving shapes over scrolling noise (x264 makes almost every frame a reference there at 720p: the
no-gain case).

    .venv/bin/python bench/skipping.py [--repeats 6] [--out skipping.md] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from revise_prep.models.vila.frames import load_ar_frames
from revise_prep.settings import FrameSettings
from revise_prep.testing.videos import make_video
from revise_prep.video import read_clip
from revise_prep.video import reader as reader_mod

REPO = Path(__file__).resolve().parents[1]
FIXTURE_VIDEOS = REPO.parent / "shared" / "fixtures" / "reference" / "videos"


def _groups(quick: bool, cache: Path) -> dict[str, list[Path]]:
    size = dict(width=160, height=96, frames=40) if quick else dict(width=1280, height=720, frames=60)
    generated = [make_video(cache / f"gen_{i}.mp4", seed=i, **size) for i in range(2 if quick else 6)]
    groups = {f"{len(generated)} generated {size['width']}x{size['height']}, {size['frames']} frames": generated}
    real = sorted(FIXTURE_VIDEOS.glob("source_*.mp4"))
    if real and not quick:
        groups[f"{len(real)} ReViSE example videos, 720p, 101 frames"] = real
    return groups


def _timed(skip: bool, fn: Callable[[Path], object], videos: list[Path]) -> tuple[float, list]:
    reader_mod.SKIPPABLE_CODECS = frozenset({"h264"}) if skip else frozenset()
    t0 = time.perf_counter()
    results = [fn(v) for v in videos]
    return time.perf_counter() - t0, results


def _same(a: list, b: list) -> bool:
    def arrays(r):
        return [r.frames.numpy()] if hasattr(r, "frames") else [np.asarray(im) for im in r]
    return all(np.array_equal(x, y) for ra, rb in zip(a, b) for x, y in zip(arrays(ra), arrays(rb)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two tiny generated videos, one repeat (seconds)")
    ap.add_argument("--repeats", type=int, default=None, help="runs per way (default 6, quick 1)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    repeats = args.repeats or (1 if args.quick else 6)
    step1 = FrameSettings(frame_num=5, interval=3, height=32, width=48) if args.quick else \
        FrameSettings(frame_num=17, interval=3, height=96, width=160)
    readers = {f"step 1, {step1.frame_num} / {step1.interval} / {step1.height}x{step1.width}":
               lambda v: read_clip(v, step1, dtype=torch.uint8), "step 2, 8 AR frames": load_ar_frames}
    lines = [f"Seconds per group of videos (median of {repeats} interleaved runs); ratio = every frame / skipping.", "",
             "| videos | reader | skipping (s) | every frame (s) | ratio | identical |", "|---|---|---:|---:|---:|---|"]
    original = reader_mod.SKIPPABLE_CODECS
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for group, videos in _groups(args.quick, Path(tmp)).items():
                for name, fn in readers.items():
                    times: dict[bool, list[float]] = {True: [], False: []}
                    results = {}
                    for r in range(repeats):
                        for skip in ((True, False) if r % 2 else (False, True)):
                            seconds, results[skip] = _timed(skip, fn, videos)
                            times[skip].append(seconds)
                    a, b = statistics.median(times[True]), statistics.median(times[False])
                    same = _same(results[True], results[False])
                    lines.append(f"| {group} | {name} | {a:.3f} | {b:.3f} | {b / a:.2f}x | {'yes' if same else 'NO'} |")
    finally:
        reader_mod.SKIPPABLE_CODECS = original
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    assert "| NO |" not in text, "skipping changed frames"
    return 0


if __name__ == "__main__":
    sys.exit(main())
