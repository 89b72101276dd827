"""Benchmark: step 1 end to end (decode in workers + encode + write) vs the pure-model rate of the same models.

Not a test. The pure-model rate encodes clips that were decoded beforehand and held in memory (only the
VAE + umT5 calls are timed); the pipeline rate is ``run_step1`` on the same videos, with the same
(already loaded) models, into a fresh output folder per run, at 0, 1 and 2 DataLoader workers. Runs are
interleaved (pure, w0, w1, w2, pure, ...) and the median samples/s is reported with the ratio
pipeline / pure. It also records the CPU seconds per sample spent decoding (worker processes) and
encoding (the main process), which bound what a machine with few cores can show.

Sizes: tiny random Wan2.1 VAE (base_dim 8) + umT5 (d_model 64) from ``make_tiny_wan_release``, on
1280x720 H.264 inputs with rich synthetic content (gradient + moving shapes + moving noise), 17 frames at
interval 3 sampled to 96x160 (the printed CPU columns give the decode / encode split actually measured).

    .venv/bin/python bench/pipeline.py [--pairs 4] [--repeats 3] [--workers 0,1,2] [--out FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from revise_prep.inputs import parse_entries
from revise_prep.pipeline.step1 import run_step1
from revise_prep.settings import FrameSettings, ModelSettings, RunSettings
from revise_prep.testing.tiny_models import make_tiny_wan_release
from revise_prep.testing.videos import make_video
from revise_prep.video import read_clip

log = logging.getLogger("bench.pipeline")
PROMPTS = ("Make the whole scene look like it is covered in fresh snow, slowly.",
           "Replace the moving shapes with falling autumn leaves.",
           "Turn the daytime scene into night with a full moon over the lake.",
           "Change the sky to a warm orange sunset and make the city lights glow.")


@dataclass
class Case:
    quick: bool
    pairs: int
    width: int
    height: int
    video_frames: int
    frames: FrameSettings
    text_len: int = 512

    @property
    def desc(self) -> str:
        f = self.frames
        return (f"{self.pairs} edit pairs ({2 * self.pairs} videos {self.width}x{self.height}, {self.video_frames} "
                f"frames, x264, rich synthetic content); {f.frame_num} frames / interval {f.interval} / "
                f"{f.height}x{f.width}; text_len {self.text_len}")


def make_case(quick: bool, pairs: int | None) -> Case:
    if quick:
        return Case(True, pairs or 2, 160, 96, 12, FrameSettings(frame_num=1, interval=2, height=16, width=16), 16)
    return Case(False, pairs or 4, 1280, 720, 60, FrameSettings(frame_num=17, interval=3, height=96, width=160))


def make_inputs(case: Case, cache: Path) -> Path:
    """Videos + pairs.json under ``cache`` (videos are reused between invocations); returns pairs.json."""
    vids = cache / "videos"
    vids.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(case.pairs):
        names = []
        for role, seed in (("src", 2 * i), ("tgt", 2 * i + 1)):
            name = f"{case.width}x{case.height}_{case.video_frames}f_{seed}.mp4"
            path = vids / name
            if not path.is_file():
                log.info("generating %s", path)
                make_video(path.with_suffix(".tmp.mp4"), frames=case.video_frames, width=case.width,
                           height=case.height, seed=seed).rename(path)
            names.append(f"videos/{name}")
        entries.append({"source_video_path": names[0], "target_video_path": names[1],
                        "instruction": PROMPTS[i % len(PROMPTS)] + f" (pair {i})"})
    pairs = cache / "pairs.json"
    pairs.write_text(json.dumps(entries, indent=1))
    return pairs


def load_models(cache: Path, text_len: int):
    from revise_prep.models.umt5 import UMT5TextEncoder
    from revise_prep.models.wan_vae import WanVAE

    release = cache / "Wan2.1-tiny"
    if not (release / "Wan2.1_VAE.pth").is_file():
        make_tiny_wan_release(release, layout="original")
    vae = WanVAE.load(release, dtype="float32", device="cpu")
    t5 = UMT5TextEncoder.load(release, dtype="float32", device="cpu", text_len=text_len)
    return release, vae, t5


def _cpu() -> tuple[float, float]:
    """(CPU seconds of this process, CPU seconds of its reaped children: DataLoader workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


@dataclass
class Timing:
    rate: list[float] = field(default_factory=list)  # samples/s
    main_cpu: list[float] = field(default_factory=list)  # CPU s/sample, main process
    worker_cpu: list[float] = field(default_factory=list)  # CPU s/sample, worker processes

    def add(self, samples: int, wall: float, cpu0: tuple[float, float], cpu1: tuple[float, float]) -> None:
        self.rate.append(samples / wall)
        self.main_cpu.append((cpu1[0] - cpu0[0]) / samples)
        self.worker_cpu.append((cpu1[1] - cpu0[1]) / samples)

    def median(self, name: str) -> float:
        return statistics.median(getattr(self, name))


def pure_model(decoded: list[tuple[list[torch.Tensor], str]], vae, t5) -> int:
    """The model calls Step1Stage.encode makes for one sample: the VAE on each clip, umT5 on the prompt."""
    for videos, prompt in decoded:
        for v in videos:
            vae.encode(v.permute(1, 0, 2, 3)[None])
        t5.encode([prompt])
    return len(decoded)


def pipeline(pairs: Path, root: Path, out: Path, case: Case, release: Path, vae, t5, workers: int) -> int:
    if out.exists():
        shutil.rmtree(out)  # resume would skip everything: always a fresh folder
    run = RunSettings(input=str(pairs), output_dir=str(out), video_root=str(root), num_workers=workers,
                      progress=False)
    models = ModelSettings(ckpt_dir=str(release), device="cpu", vae_dtype="float32", t5_dtype="float32",
                           text_len=case.text_len)
    summary = run_step1(run, case.frames, models, loaded=(vae, t5))
    done = int(summary["by_status"].get("done", 0)) if summary else 0
    if done != case.pairs:
        raise RuntimeError(f"pipeline wrote {done} of {case.pairs} records: {summary}")
    shutil.rmtree(out)
    return done


def run(case: Case, repeats: int, workers: list[int], cache: Path, work: Path) -> dict:
    pairs = make_inputs(case, cache)
    release, vae, t5 = load_models(cache, case.text_len)
    samples, problems = parse_entries(pairs, cache)
    assert not problems, problems
    # Decode everything once (untimed) for the pure-model rate; measure decode CPU per sample in-process.
    c0 = time.process_time()
    decoded = [([read_clip(s.source_file, case.frames, dtype=torch.uint8).frames,  # what workers hand over
                 read_clip(s.target_file, case.frames, dtype=torch.uint8).frames], s.prompt) for s in samples]
    decode_cpu = (time.process_time() - c0) / len(samples)
    pure_model(decoded[:1], vae, t5)  # warm-up (allocator, first-call overheads)
    timings: dict[str, Timing] = {"pure": Timing(), **{f"w{w}": Timing() for w in workers}}
    for r in range(repeats):  # interleaved so load drift hits every configuration alike
        for name in timings:
            cpu0 = _cpu()
            t0 = time.perf_counter()
            if name == "pure":
                n = pure_model(decoded, vae, t5)
            else:
                n = pipeline(pairs, cache, work / f"out_{name}_{r}", case, release, vae, t5, int(name[1:]))
            wall = time.perf_counter() - t0
            timings[name].add(n, wall, cpu0, _cpu())
            log.info("repeat %d %s: %.3f samples/s", r, name, n / wall)
    return {"timings": timings, "decode_cpu": decode_cpu, "threads": torch.get_num_threads()}


def _span(tm: Timing) -> str:
    return f"{min(tm.rate):.3f} - {max(tm.rate):.3f}"


def table(case: Case, res: dict, repeats: int) -> str:
    t: dict[str, Timing] = res["timings"]
    pure = t["pure"].median("rate")
    model_cpu = t["pure"].median("main_cpu")
    decode_cpu = res["decode_cpu"]
    import os

    cores = os.cpu_count() or 1
    lines = [f"Step 1 throughput, samples/s (median of {repeats} interleaved runs; {cores} CPU cores, torch threads "
             f"{res['threads']}); {case.desc}. ratio = pipeline / pure-model.", "",
             "| configuration | samples/s (median) | min - max | ratio | main-process CPU s/sample | "
             "worker CPU s/sample |", "|---|---:|---:|---:|---:|---:|",
             f"| pure model (pre-decoded tensors, VAE + umT5 only) | {pure:.3f} | {_span(t['pure'])} | 1.00 | "
             f"{model_cpu:.3f} | - |"]
    for name, tm in t.items():
        if name == "pure":
            continue
        rate = tm.median("rate")
        lines.append(f"| run_step1, num_workers={name[1:]} | {rate:.3f} | {_span(tm)} | {rate / pure:.2f} | "
                     f"{tm.median('main_cpu'):.3f} | {tm.median('worker_cpu'):.3f} |")
    bound = min(1.0, cores / (model_cpu + decode_cpu) / pure)
    lines += ["", f"CPU per sample: decoding {decode_cpu:.3f} s (both clips, one process), encoding {model_cpu:.3f} s "
              f"(pure-model run). With {cores} cores shared by decode workers and the encoder, the pipeline "
              f"cannot exceed {cores} / ({model_cpu:.3f} + {decode_cpu:.3f}) = {cores / (model_cpu + decode_cpu):.3f} "
              f"samples/s, i.e. ratio <= {bound:.2f}, unless the encoder leaves cores idle."]
    for name, tm in t.items():
        if name != "pure":
            cpu = tm.median("main_cpu") + tm.median("worker_cpu")
            lines.append(f"CPU-time ratio, num_workers={name[1:]}: pure-model CPU / pipeline CPU (main + workers) = "
                         f"{model_cpu:.3f} / {cpu:.3f} = {model_cpu / cpu:.2f} (what a {cores}-core box saturated "
                         "by the pipeline can show at best; insensitive to other load on the machine).")
    try:
        load = os.getloadavg()[0]
        lines.append(f"Load average at the end: {load:.1f} on {cores} cores (above {cores} means other processes "
                     "shared the CPU: wall-clock rates are then noisy, see min - max).")
    except OSError:
        pass
    lines.append("One-pass `revise-prep run`: see bench/run_vs_steps.py (its pure-model rate would include VILA).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny inputs, one repeat (seconds; CI smoke)")
    ap.add_argument("--pairs", type=int, default=None, help="edit pairs per run (default 4, quick 2)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved runs per configuration (default 3, quick 1)")
    ap.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts")
    ap.add_argument("--cache", type=Path, default=None, help="folder for generated videos and the tiny models")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("revise_prep").setLevel(logging.WARNING)
    case = make_case(args.quick, args.pairs)
    repeats = args.repeats or (1 if args.quick else 3)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or (Path(tmp) / "cache" if args.quick else
                               Path(tempfile.gettempdir()) / "revise_prep_bench" / "pipeline")
        cache.mkdir(parents=True, exist_ok=True)
        res = run(case, repeats, workers, cache, Path(tmp))
    text = table(case, res, repeats)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
