"""Benchmark: the cost of turning frames upright (display matrix) on a 1280x720, 81-frame step-1 read.

Not a test. One phone-style video (stored 1280x720 landscape, 90-degree display matrix) is read with
``read_clip`` to uint8 as a worker does, 81 frames at interval 1, both ways, interleaved:

* rotated (the default): frames turned upright (``np.rot90`` + copy) and cropped/resized to a portrait
  832x480 target, as the original does;
* stored (``auto_rotate=False``): the stored landscape frames to a landscape 480x832 target (same pixel count).

Prints the median seconds per read and the ratio rotated/stored, and checks that the rotated clip equals the
stored frames turned upright by an independent ``np.rot90`` and resized.

    .venv/bin/python bench/rotation.py [--repeats 7] [--threads 0] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from revise_prep.settings import FrameSettings
from revise_prep.testing.videos import make_video
from revise_prep.video import frames_to_tensor, read_clip, read_frames_rgb
from revise_prep.video.transform import normalise_u8


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="decoder/transform threads (read_clip's threads)")
    p.add_argument("--quick", action="store_true", help="a 160x96, 9-frame video (smoke test of this script)")
    args = p.parse_args(argv)
    w, h, n = (160, 96, 9) if args.quick else (1280, 720, 81)
    with tempfile.TemporaryDirectory() as tmp:
        path = make_video(Path(tmp) / "phone.mp4", frames=n, width=w, height=h, rotation=90, seed=1)
        tgt = (96, 64) if args.quick else (832, 480)
        rotated = FrameSettings(frame_num=n, interval=1, height=tgt[0], width=tgt[1])
        stored = FrameSettings(frame_num=n, interval=1, height=tgt[1], width=tgt[0], auto_rotate=False)
        times: dict[str, list[float]] = {"rotated": [], "stored": []}
        clips = {}
        read_clip(path, stored, threads=args.threads, dtype=torch.uint8)  # warm-up (file cache, libraries)
        order = [("rotated", rotated), ("stored", stored)]
        for r in range(args.repeats):
            for name, settings in order if r % 2 else order[::-1]:  # alternate who goes first
                t0 = time.perf_counter()
                clips[name] = read_clip(path, settings, threads=args.threads, dtype=torch.uint8)
                times[name].append(time.perf_counter() - t0)
        # exactness: the rotated clip is the stored frames turned by np.rot90, then cropped and resized
        raw = read_frames_rgb(path, [0, n - 1], auto_rotate=False)
        want = frames_to_tensor([np.ascontiguousarray(np.rot90(f)) for f in raw], *tgt)
        got = torch.from_numpy(normalise_u8(clips["rotated"].frames[[0, -1]].permute(0, 2, 3, 1).numpy()))
        assert torch.equal(got, want), "rotated frames differ from np.rot90 of the stored frames"
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{w}x{h}, {n} frames, threads {args.threads}, {args.repeats} interleaved repeats (median s per read)")
    print(f"| read | seconds |\n|---|---|\n| stored (auto_rotate=False, 480x832) | {med['stored']:.3f} |\n"
          f"| rotated (default, 832x480) | {med['rotated']:.3f} |")
    print(f"ratio rotated/stored: {med['rotated'] / med['stored']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
