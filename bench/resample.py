"""Benchmark: banded ``resize_bicubic_pillow10`` vs the original dense port, seconds per RGB frame to 384x384.

Not a test. Runs both interleaved on random frames, prints the median seconds per frame side by side and the
ratio, and checks the outputs are identical. ``--quick`` uses small frames and few repeats (CI smoke);
``--out FILE`` also writes the table as markdown. BLAS threads matter for the dense version: compare with
``OPENBLAS_NUM_THREADS=1`` too (what a busy decoding worker sees).

    .venv/bin/python bench/resample.py [--repeats 15] [--out resample.md] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from revise_prep.models.vila.resample import _resize_bicubic_pillow10_dense, resize_bicubic_pillow10


def _time(fn, image: np.ndarray, size: int) -> float:
    start = time.perf_counter()
    fn(image, size, size)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="small frames, 3 repeats")
    args = parser.parse_args()
    shapes = [(72, 128), (108, 192)] if args.quick else [(720, 1280), (1080, 1920)]
    size = 38 if args.quick else args.size
    repeats = 3 if args.quick else args.repeats
    rng = np.random.default_rng(0)
    lines = [f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs", "",
             "| frame | target | old dense s/frame | new banded s/frame | speed-up | identical |",
             "|---|---|---|---|---|---|"]
    for h, w in shapes:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        same = np.array_equal(resize_bicubic_pillow10(image, size, size),
                              _resize_bicubic_pillow10_dense(image, size, size))  # also warms the weight caches
        old, new = [], []
        for _ in range(repeats):
            old.append(_time(_resize_bicubic_pillow10_dense, image, size))
            new.append(_time(resize_bicubic_pillow10, image, size))
        t_old, t_new = statistics.median(old), statistics.median(new)
        lines.append(f"| {w}x{h} | {size}x{size} | {t_old:.4f} | {t_new:.4f} | {t_old / t_new:.1f}x | "
                     f"{'yes' if same else 'NO'} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    if "| NO |" in table:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
