"""Benchmark: the static modulo split (2 local ranks) vs ``--engine ray`` (2 encoder actors) on a skewed input.

Not a test. Step 1 (tiny random-weight Wan VAE and umT5, CPU) over edit pairs whose sources and targets are
480p, 1080p or 4K videos, so that decoding one pair costs about tenfold more at one end than at the other. The
input is deliberately ordered so that the modulo split gives rank 0 the 4K pairs and rank 1 the 480p ones (the
1080p pairs are shared). Each encoder worker logs when it finishes each sample; reported per engine: the spread
between the first and the last worker to finish its last sample, end-to-end samples/s (from launch, model
loading and, for Ray, cluster start included), the time from launch to the first record, how many umT5 calls
encoded the prompts and how many prompts each took on average, and Ray's start-up cost (``ray.init`` of a local
cluster, and the time from it to the first record). Both engines use 4 processes: 2 ranks x (1 encoder + 1
decoding worker) vs 2 encoder actors + 2 decode task slots (a 4-CPU local cluster).

    .venv/bin/python bench/engines.py [--pairs-per-size 4] [--out engines.md] [--quick]
        [--frame-num 5 --target-size 32,48]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.step1 import Step1Factory, plan_items, read_input
from revise_prep.settings import EngineSettings, ExecutionSettings, FrameSettings, ModelSettings, RunSettings

SIZES = {"480p": (854, 480), "1080p": (1920, 1080), "4k": (3840, 2160)}
FRAMES = FrameSettings(frame_num=5, interval=2, height=32, width=48)


class Timed:
    """Wraps a stage: appends "<pid> <time>" to a log after each sample is encoded (O_APPEND: one line each), and
    "<pid> <n>" to ``<log>.t5`` for each umT5 call of n prompts."""

    def __init__(self, stage, log: str) -> None:
        self.stage, self.log, self.step, self.list_name = stage, log, stage.step, stage.list_name
        t5 = getattr(stage, "t5", None)
        if t5 is not None:
            encode = t5.encode

            def counted(prompts):
                with open(self.log + ".t5", "a") as f:
                    f.write(f"{os.getpid()} {len(prompts)}\n")
                return encode(prompts)

            t5.encode = counted

    def signature(self):
        return self.stage.signature()

    def describe(self, item):
        return self.stage.describe(item)

    def prepare(self, todo):
        self.stage.prepare(todo)

    def decode(self, item):
        return self.stage.decode(item)

    def encode(self, decoded):
        record = self.stage.encode(decoded)
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()} {time.time():.6f}\n")
        return record


class TimedFactory:
    def __init__(self, inner: Step1Factory, log: str) -> None:
        self.inner, self.log = inner, log

    def build(self, rank):
        return Timed(self.inner.build(rank), self.log)


def make_inputs(root: Path, per_size: int, scale: int = 1) -> Path:
    """Pairs ordered 4K, 480p, 4K, 480p, ... then the 1080p ones: rank 0 of 2 gets the 4K pairs."""
    from revise_prep.testing.tiny_models import make_tiny_wan_release
    from revise_prep.testing.videos import make_video

    if (root / "pairs.json").exists():
        return root
    make_tiny_wan_release(root / "wan", layout="original")
    (root / "v").mkdir(parents=True, exist_ok=True)
    order = [s for _ in range(per_size) for s in ("4k", "480p")] + ["1080p"] * per_size
    pairs = []
    for i, size in enumerate(order):
        w, h = (max(64, v // scale // 2 * 2) for v in SIZES[size])
        for role in ("src", "tgt"):
            make_video(root / "v" / f"{i}_{size}_{role}.mp4", frames=12, width=w, height=h, seed=i * 2 + (role == "tgt"))
        pairs.append({"source_video_path": f"v/{i}_{size}_src.mp4", "target_video_path": f"v/{i}_{size}_tgt.mp4",
                      "instruction": f"Turn scene {i} into a snowy winter evening."})
    (root / "pairs.json").write_text(json.dumps(pairs))
    return root


def settings(root: Path, out: Path, engine: EngineSettings = EngineSettings()):
    run = RunSettings(input=str(root / "pairs.json"), output_dir=str(out), video_root=str(root), num_workers=1,
                      progress=False, engine=engine)
    models = ModelSettings(ckpt_dir=str(root / "wan"), vae_dtype="float32", t5_dtype="float32", text_len=32,
                           device="cpu")
    return run, models


def run_rank(root: Path, out: Path, log: str, rank: int, world: int, frames: FrameSettings = FRAMES) -> None:
    """One rank of the static split (the local engine with a DataLoader worker), as torchrun would start it."""
    from revise_prep.pipeline.engines.local.runner import decoder_threads, run_stage

    run, models = settings(root, out)
    info = RankInfo(rank, world, rank)
    inner = Step1Factory(run, frames, models).build(info)
    inner.decoder_threads = decoder_threads(run.num_workers)  # (the wrapper hides it from run_stage)
    stage = Timed(inner, log)
    samples, problems = read_input(run)
    run_stage(stage, plan_items(samples, problems, out), out, info, ExecutionSettings.of(run))


def spread(log: Path, t0: float) -> dict:
    ends: dict[str, float] = {}
    first = None
    for line in log.read_text().splitlines():
        pid, t = line.split()
        ends[pid] = max(ends.get(pid, 0.0), float(t))
        first = float(t) if first is None else min(first, float(t))
    last = sorted(ends.values())
    calls = [int(line.split()[1]) for line in Path(f"{log}.t5").read_text().splitlines()] \
        if Path(f"{log}.t5").exists() else []
    return {"workers": len(ends), "first_done_s": last[0] - t0, "last_done_s": last[-1] - t0,
            "spread_s": last[-1] - last[0], "first_record_s": first - t0, "samples": len(log.read_text().splitlines()),
            "t5_calls": len(calls), "t5_prompts_per_call": sum(calls) / len(calls) if calls else 0.0}


def bench_static(root: Path, work: Path, frames: FrameSettings = FRAMES) -> dict:
    out, log = work / "static", work / "static.log"
    t0 = time.time()
    procs = [subprocess.Popen([sys.executable, __file__, "--rank", str(r), "--world", "2", "--root", str(root),
                               "--dest", str(out), "--log", str(log), "--frame-num", str(frames.frame_num),
                               "--target-size", f"{frames.height},{frames.width}"]) for r in range(2)]
    assert all(p.wait() == 0 for p in procs)
    result = spread(log, t0)
    result["samples_per_s"] = result["samples"] / result["last_done_s"]
    return result


def bench_ray(root: Path, work: Path, frames: FrameSettings = FRAMES) -> dict:
    import ray

    from revise_prep.pipeline.engines.ray import RayEngine

    out, log = work / "ray", work / "ray.log"
    t0 = time.time()
    ray.init(address="local", num_cpus=4, include_dashboard=False, logging_level="WARNING", configure_logging=False)
    init = time.time() - t0
    try:
        engine = EngineSettings(name="ray", actors=2)
        run, models = settings(root, out, engine)
        samples, problems = read_input(run)
        t1 = time.time()
        RayEngine(engine).run(TimedFactory(Step1Factory(run, frames, models), str(log)),
                              plan_items(samples, problems, out), out, ExecutionSettings.of(run))
    finally:
        ray.shutdown()
    result = spread(log, t0)
    result.update(samples_per_s=result["samples"] / result["last_done_s"], ray_init_s=init,
                  first_record_after_init_s=result["first_record_s"] - (t1 - t0))
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs-per-size", type=int, help="pairs per video size (default 4; 1 with --quick)")
    p.add_argument("--out", help="also write the table to this markdown file")
    p.add_argument("--quick", action="store_true", help="videos at a tenth of the sizes, one pair per size unless "
                   "--pairs-per-size (a smoke run)")
    p.add_argument("--frame-num", type=int, default=FRAMES.frame_num, help="frames per clip (default 5)")
    p.add_argument("--target-size", default=f"{FRAMES.height},{FRAMES.width}", metavar="H,W",
                   help="clip size (default 32,48); a larger one makes the encoder, not decoding, the bottleneck")
    p.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    p.add_argument("--world", type=int, help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.add_argument("--dest", help=argparse.SUPPRESS)
    p.add_argument("--log", help=argparse.SUPPRESS)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    height, width = (int(v) for v in args.target_size.split(","))
    frames = FrameSettings(frame_num=args.frame_num, interval=2 if args.frame_num <= 5 else 1, height=height,
                           width=width)
    if args.rank is not None:
        run_rank(Path(args.root), Path(args.dest), args.log, args.rank, args.world, frames)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        work = Path(tmp)
        per_size = args.pairs_per_size or (1 if args.quick else 4)
        root = make_inputs(work / "data", per_size, 10 if args.quick else 1)
        static = bench_static(root, work, frames)
        ray_ = bench_ray(root, work, frames)
        same = [Path(x).name for x in (work / "static" / "vae_features.txt").read_text().splitlines()] == \
            [Path(x).name for x in (work / "ray" / "vae_features.txt").read_text().splitlines()]
    rows = ["| engine | workers | samples | first worker done (s) | last worker done (s) | spread (s) | "
            "samples/s end to end | first record (s) | umT5 calls | prompts per call |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in (("static split (2 ranks)", static), ("ray (2 actors)", ray_)):
        rows.append(f"| {name} | {r['workers']} | {r['samples']} | {r['first_done_s']:.1f} | {r['last_done_s']:.1f} | "
                    f"{r['spread_s']:.1f} | {r['samples_per_s']:.3f} | {r['first_record_s']:.1f} | "
                    f"{r['t5_calls']} | {r['t5_prompts_per_call']:.1f} |")
    rows.append("")
    rows.append(f"Ray start-up: ray.init (local 4-CPU cluster) {ray_['ray_init_s']:.1f} s; first record "
                f"{ray_['first_record_after_init_s']:.1f} s after it (actor start, model load, first decode). "
                f"Same list of records: {same}.")
    text = "\n".join(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
