"""Cost of the integrity checks a resume makes, for N finished records (default 1000).

Writes N step-1 records of ReViSE's own size (17 frames at 352x640: two [16,5,44,80] float32 latents and a
[40,4096] bfloat16 umT5 embedding, ~2.6 MB each), then times, side by side in one run:
  full:   every record loaded through the restricted unpickler and its meta compared (first resume), and
  index:  the done-index shortcut (stat + compare with the logged size/mtime/settings hash; later resumes).
Usage: python bench/resume.py [--records 1000] [--dir DIR] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from revise_prep.pipeline import resume
from revise_prep.records.atomic import atomic_write_bytes
from revise_prep.records.safe_pickle import dumps

SETTINGS = {"frame_num": 17, "interval": 2, "height": 352, "width": 640, "vae": "wan2.1-vae:x", "t5": "umt5:x"}


def make_records(folder: Path, n: int, latent_shape, emb_shape) -> list[Path]:
    g = torch.Generator().manual_seed(0)
    base = {"latent_feature": torch.randn(*latent_shape, generator=g),
            "latent_feature_tgt": torch.randn(*latent_shape, generator=g),
            "prompt": "What if the cold air meets the wet ground?", "text_emb": [torch.randn(*emb_shape).bfloat16()],
            "video_path": "videos/source.mp4", "frame_num": 17, "meta": {"step": "vae", "settings": SETTINGS}}
    data = dumps(base)
    paths = []
    for i in range(n):
        path = folder / f"rec_{i:05d}.pkl"
        atomic_write_bytes(path, data, fsync=False)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--dir", help="folder for the records (default: a temporary folder, removed afterwards)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="50 small records, one repeat (smoke test)")
    ap.add_argument("--out", help="write the table (markdown) to this file")
    args = ap.parse_args()
    n, latent, emb = (50, (16, 2, 4, 6), (8, 64)) if args.quick else (args.records, (16, 5, 44, 80), (40, 4096))
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        paths = make_records(folder, n, latent, emb)
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        sig = resume.signature_hash(SETTINGS)
        index = resume.DoneIndex(folder, 0, 1)
        for p in paths:
            index.add(p, sig)
        full_t, index_t = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            assert all(resume.check_record(p, "vae", SETTINGS)[0] == resume.VALID for p in paths)
            full_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            assert all(index.trusted(p, sig) for p in paths)
            index_t.append(time.perf_counter() - t)
        index.close()
    full, fast = statistics.median(full_t), statistics.median(index_t)
    table = "\n".join([
        "| records | total size | full check (load + meta) | done index | ratio |",
        "|---:|---:|---:|---:|---:|",
        f"| {n} | {size_mb:.0f} MB | {full:.2f} s ({1e3 * full / n:.2f} ms/record) | "
        f"{fast * 1e3:.1f} ms ({1e6 * fast / n:.0f} us/record) | {full / fast:.0f}x |",
    ])
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
