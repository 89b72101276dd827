"""Size of the log a job scheduler keeps (stderr redirected to a file), for inputs with many renamed outputs.

Two cases, each printed as a row (lines, carriage returns, bytes):
  run:   `revise-prep vae` on N pairs (default 100) whose targets share 3 file names, so N-3 outputs are
         renamed; tiny random models, stderr redirected to a file as under SLURM.
  plan:  reading and planning an input of M entries (default 100,000) whose targets share 5 file names
         (naming only, no models): the log lines written before any sample is processed.
Run it once with each version on PYTHONPATH to compare them.
Usage: python bench/log_volume.py [--pairs 100] [--entries 100000] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the CLI's log format


def measure(text: bytes) -> tuple[int, int, int]:
    return text.count(b"\n"), text.count(b"\r"), len(text)


def run_case(root: Path, pairs: int) -> tuple[int, int, int, int]:
    from revise_prep.testing.tiny_models import make_tiny_wan_release
    from revise_prep.testing.videos import make_video

    release = make_tiny_wan_release(root / "wan")
    videos = root / "videos"
    real = [make_video(videos / f"clip_{c}.mp4", frames=8, width=48, height=32, seed=i) for i, c in enumerate("abc")]
    entries = []
    for i in range(pairs):
        target = videos / f"d{i:03d}" / real[i % 3].name  # 3 file names in N folders: N - 3 renames
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(real[i % 3], target)
        entries.append({"source_video_path": str(real[(i + 1) % 3]), "target_video_path": str(target),
                        "instruction": f"Turn the scene into a snowy evening, version {i}."})
    (root / "pairs.json").write_text(json.dumps(entries))
    log_file = root / "stderr.log"
    with open(log_file, "wb") as err:
        proc = subprocess.run([sys.executable, "-m", "revise_prep", "vae", "--ckpt-dir", str(release),
                               "--input", str(root / "pairs.json"), "--output-dir", str(root / "out"),
                               "--frame-num", "5", "--sampling-rate", "1", "--target-size", "32,48",
                               "--text-len", "16", "--num-workers", "0"], stdout=subprocess.DEVNULL, stderr=err)
    return (*measure(log_file.read_bytes()), proc.returncode)


def plan_case(root: Path, entries: int) -> tuple[int, int, int, float]:
    from revise_prep.pipeline.step1 import plan_items, read_input
    from revise_prep.settings import RunSettings

    data = [{"source_video_path": f"src/{i}.mp4", "target_video_path": f"d{i}/clip_{i % 5}.mp4",
             "instruction": f"Turn the scene into a snowy evening, version {i}."} for i in range(entries)]
    (root / "big.json").write_text(json.dumps(data))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    logger = logging.getLogger("revise_prep")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    start = time.perf_counter()
    try:
        samples, problems = read_input(RunSettings(input=str(root / "big.json"), output_dir=str(root / "out")))
        plan_items(samples, problems, root / "out", ".pkl")
    finally:
        logger.removeHandler(handler)
    return (*measure(stream.getvalue().encode()), time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="4 pairs and 2,000 entries (smoke test)")
    ap.add_argument("--out", help="write the table (markdown) to this file")
    args = ap.parse_args()
    pairs, entries = (4, 2000) if args.quick else (args.pairs, args.entries)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "run").mkdir()
        (root / "plan").mkdir()
        r_lines, r_cr, r_bytes, rc = run_case(root / "run", pairs)
        p_lines, p_cr, p_bytes, p_s = plan_case(root / "plan", entries)
    rows = ["| case | log lines | carriage returns | bytes | note |", "|---|---:|---:|---:|---|",
            f"| `vae`, {pairs} pairs, {pairs - 3} renamed, stderr to a file | {r_lines} | {r_cr} | {r_bytes} | exit {rc} |",
            f"| planning {entries:,} entries, 5 target names | {p_lines} | {p_cr} | {p_bytes} | {p_s:.1f} s |"]
    table = "\n".join(rows)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
