"""Benchmark: step 2 (``revise-prep ar``) seconds per sample with 0 vs 2 DataLoader workers, tiny VILA on CPU.

Not a test. Generates the inputs once (720p-ish videos and original-format step-1 records pointing at them),
loads a tiny random VILA checkpoint once, then runs ``run_step2`` (what the CLI calls) on the same records with
``--num-workers 0`` and ``2`` side by side, with all 8 frames (the original) and with ``--only-used-frames``.
The model is tiny, so the numbers measure the decode + preprocess side that the workers take off the encoder.
Every configuration must produce bit-identical records; the last column says so.

    .venv/bin/python bench/ar_step.py [--samples 12] [--frames 64] [--size 1280x720] [--out table.md] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from revise_prep.models.vila import VilaARModel, black_frames
from revise_prep.pipeline.step2 import ArSettings, run_step2
from revise_prep.records import load_record
from revise_prep.testing.tiny_vila import make_tiny_vila
from revise_prep.testing.videos import make_video

log = logging.getLogger("bench.ar_step")


def make_inputs(root: Path, samples: int, frames: int, width: int, height: int) -> Path:
    """``samples`` videos and one original-format step-1 record (six keys, plain pickle) per video."""
    records = root / "step1"
    records.mkdir(parents=True, exist_ok=True)
    for i in range(samples):
        video = root / "videos" / f"v{i:02d}.mp4"
        if not video.exists():
            make_video(video, frames=frames, width=width, height=height, seed=i, preset="ultrafast")
        g = torch.Generator().manual_seed(i)
        record = {"latent_feature": torch.randn(16, 2, 4, 6, generator=g), "prompt": f"Make scene {i} snowy.",
                  "text_emb": [torch.randn(8, 32, generator=g)], "video_path": str(video), "frame_num": 5,
                  "latent_feature_tgt": torch.randn(16, 2, 4, 6, generator=g)}
        with open(records / f"s{i:02d}.pkl", "wb") as fh:
            pickle.dump(record, fh)
    return records


def run_config(records: Path, out: Path, ckpt: Path, model: VilaARModel, workers: int, all_frames: bool) -> float:
    settings = ArSettings(data_file=str(records), result_folder=str(out), model_path=str(ckpt), device="cpu",
                          num_workers=workers, all_frames=all_frames, progress=False)
    start = time.perf_counter()
    summary = run_step2(settings, model=model)
    seconds = time.perf_counter() - start
    if summary is None or summary["by_status"] != {"done": summary["samples"]}:
        raise RuntimeError(f"workers={workers}: not every sample was done: {summary}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 small clips (a smoke run of a few seconds)")
    ap.add_argument("--samples", type=int, default=None, help="number of samples (default 12, quick 3)")
    ap.add_argument("--frames", type=int, default=None, help="frames per video (default 64, quick 12)")
    ap.add_argument("--size", default=None, help="WxH of the videos (default 1280x720, quick 160x96)")
    ap.add_argument("--repeats", type=int, default=None, help="runs per configuration, median (default 2, quick 1)")
    ap.add_argument("--workers", default="0,2", help="comma-separated --num-workers values to compare")
    ap.add_argument("--cache", type=Path, default=None, help="folder for generated inputs (reused)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    samples = args.samples or (3 if args.quick else 12)
    frames = args.frames or (12 if args.quick else 64)
    width, height = map(int, (args.size or ("160x96" if args.quick else "1280x720")).split("x"))
    workers = [int(w) for w in args.workers.split(",")]
    repeats = args.repeats or (1 if args.quick else 2)

    with tempfile.TemporaryDirectory(prefix="bench_ar_") as tmp:
        cache = args.cache or Path(tmp) / "inputs"
        t0 = time.perf_counter()
        records = make_inputs(cache, samples, frames, width, height)
        ckpt = make_tiny_vila(Path(tmp) / "tiny_vila")
        print(f"inputs: {samples} videos {width}x{height}, {frames} frames ({time.perf_counter() - t0:.1f} s to "
              f"generate); torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs", file=sys.stderr)
        model = VilaARModel.load(ckpt)
        for images in (black_frames(8), black_frames(1)):  # first-call kernel set-up out of the timings
            model.encode("vid_edit", "warm up", images)
        model.encode("vid_gen", "warm up")
        warm = Path(tmp) / "warmup.txt"  # one untimed pass of the whole step per frame mode (caches, first fsync)
        warm.write_text(str(sorted(records.glob("*.pkl"))[0]) + "\n")
        for all_frames in (True, False):
            run_config(warm, Path(tmp) / f"warm_{all_frames}", ckpt, model, 0, all_frames)
        configs = [(w, all_frames) for all_frames in (True, False) for w in workers]
        times: dict[tuple[int, bool], list[float]] = {c: [] for c in configs}
        same: dict[tuple[int, bool], bool] = {}
        reference = None
        for repeat in range(repeats):  # interleaved, so a slow spell of the machine hits every config
            for w, all_frames in configs:
                out = Path(tmp) / f"out_w{w}_{'all' if all_frames else 'used'}_{repeat}"
                times[(w, all_frames)].append(run_config(records, out, ckpt, model, w, all_frames))
                outputs = [load_record(p)["vlm_last_hidden_states"] for p in sorted(out.glob("s*.pkl"))]
                reference = reference or outputs
                same[(w, all_frames)] = same.get((w, all_frames), True) and len(outputs) == len(reference) \
                    and all(torch.equal(a, b) for a, b in zip(outputs, reference))
        rows = []
        for w, all_frames in configs:
            seconds = statistics.median(times[(w, all_frames)])
            rows.append((w, "all 8" if all_frames else "used only", seconds, seconds / samples, same[(w, all_frames)]))

    base = {frames_: s for w, frames_, _, s, _ in rows if w == workers[0]}
    lines = ["| --num-workers | frames | samples | wall s | s/sample | speed-up | identical |",
             "|---:|---|---:|---:|---:|---:|---|"]
    for w, frames_, seconds, per, same in rows:
        lines.append(f"| {w} | {frames_} | {samples} | {seconds:.2f} | {per:.3f} | {base[frames_] / per:.2f}x | "
                     f"{'yes' if same else 'NO'} |")
    table = "\n".join(lines)
    print(f"step 2, tiny VILA on CPU, {samples} videos {width}x{height} x {frames} frames, "
          f"median of {repeats} run(s)\n")
    print(table)
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")
    return 0 if all(r[-1] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
