"""Benchmark: our frame reader vs an original-style reader (decode all to count, decode again converting every frame).

Not a test. Prints a table of seconds per video (median of interleaved repeats) and the ratio, and
asserts that both readers return identical tensors. "ours" produces the float32 clip on the CPU; "ours,
uint8" is what a pipeline worker does (resized uint8 frames; the encoder normalises them on its device).
The original-style transform is torchvision's per frame: PIL crop + resize, ToTensor, Normalize.
``--quick`` runs on tiny generated clips (CI smoke); ``--out FILE`` also writes the table as markdown.

    .venv/bin/python bench/frames.py [--repeats 3] [--threads 0] [--out bench_frames.md] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from revise_prep.errors import INSUFFICIENT_FRAMES, ORIENTATION_MISMATCH, VideoError
from revise_prep.settings import FrameSettings
from revise_prep.testing.videos import make_video
from revise_prep.video import (crop_box, effective_interval, frame_indices, normalise_pixels, orientation_mismatch,
                               read_clip)

REPO = Path(__file__).resolve().parents[1]
FIXTURE_VIDEOS = REPO.parent / "shared" / "fixtures" / "reference" / "videos"
log = logging.getLogger("bench.frames")


def _set_threads(stream, threads: int) -> None:
    if threads > 0:
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = threads


def torchvision_style(frames: list[np.ndarray], h: int, w: int) -> torch.Tensor:
    """The original's transform, op for op: PIL crop + bilinear resize, ToTensor (/255), Normalize(0.5, 0.5)."""
    mean = torch.tensor([0.5, 0.5, 0.5]).view(3, 1, 1)
    out = []
    for rgb in frames:
        top, left, ch, cw = crop_box(rgb.shape[0], rgb.shape[1], h, w)
        img = Image.fromarray(rgb).crop((left, top, left + cw, top + ch)).resize((w, h), Image.BILINEAR)
        x = torch.from_numpy(np.array(img, np.uint8, copy=True)).permute(2, 0, 1).contiguous()
        out.append(x.to(torch.float32).div(255).sub_(mean).div_(mean))
    return torch.stack(out)


def original_style(path: Path, s: FrameSettings, threads: int = 0) -> torch.Tensor:
    """What the original does (with PyAV standing in for OpenCV): count by a full decode, then decode
    again from the start converting every frame to RGB up to the last needed one, then transform."""
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        _set_threads(st, threads)
        total = 0
        try:
            for _ in c.decode(st):
                total += 1
        except av.error.InvalidDataError:
            pass
        h, w = st.height, st.width
    rate = effective_interval(total, s.frame_num, s.interval, s.skip, s.strict_count)
    if rate == 0:
        raise VideoError(INSUFFICIENT_FRAMES, "too short", skip=True)
    if orientation_mismatch(h, w, s.height, s.width):
        raise VideoError(ORIENTATION_MISMATCH, "orientation", skip=True)
    wanted = frame_indices(s.frame_num, rate, s.skip)
    want, last, kept = set(wanted), wanted[-1], []
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        _set_threads(st, threads)
        try:
            for i, frame in enumerate(c.decode(st)):
                rgb = frame.to_ndarray(format="rgb24")  # cap.read() converts every frame
                if i in want:
                    kept.append(rgb)
                if i >= last:
                    break
        except av.error.InvalidDataError:
            pass
    return torchvision_style(kept, s.height, s.width)


def ours(path: Path, s: FrameSettings, threads: int = 0) -> torch.Tensor:
    return read_clip(path, s, threads=threads).frames


def ours_u8(path: Path, s: FrameSettings, threads: int = 0) -> torch.Tensor:
    return read_clip(path, s, threads=threads, dtype=torch.uint8).frames


@dataclass
class Row:
    video: str
    desc: str
    settings: str
    ours_s: float
    ours_u8_s: float
    orig_s: float
    identical: bool
    ours_u8_cpu: float = float("nan")
    orig_cpu: float = float("nan")

    @property
    def ratio(self) -> float:
        return self.orig_s / self.ours_s if self.ours_s > 0 else float("nan")

    @property
    def ratio_u8(self) -> float:
        return self.orig_s / self.ours_u8_s if self.ours_u8_s > 0 else float("nan")


def _inputs(quick: bool, cache: Path) -> list[tuple[Path, str]]:
    """(path, description) of the benchmark videos; generated ones are cached in ``cache``."""
    if quick:
        return [
            (make_video(cache / "tiny_160x96_40f.mp4", frames=40, width=160, height=96), "generated 160x96, 40 frames"),
            (make_video(cache / "tiny_96x160_24f.mp4", frames=24, width=96, height=160, seed=1),
             "generated 96x160 portrait, 24 frames"),
        ]
    out = [(FIXTURE_VIDEOS / f"source_{i}.mp4", "ReViSE example, 1280x720, 101 frames") for i in range(3)]
    gens = [("gen_1920x1080_101f.mp4", dict(frames=101, width=1920, height=1080), "synthetic 1920x1080, 101 frames"),
            ("gen_1280x720_300f.mp4", dict(frames=300, width=1280, height=720, seed=1),
             "synthetic 1280x720, 300 frames")]
    for name, kw, desc in gens:
        p = cache / name
        if not p.is_file():
            log.info("generating %s (libx264 veryfast crf 23, gradient + moving shapes + noise)", p)
            make_video(p.with_suffix(".tmp.mp4"), **kw).rename(p)
        out.append((p, desc + " (x264, rich synthetic content)"))
    return out


def _settings(quick: bool) -> list[FrameSettings]:
    if quick:
        return [FrameSettings(frame_num=5, interval=3, height=32, width=48),
                FrameSettings(frame_num=9, interval=2, height=48, width=32)]
    return [FrameSettings(frame_num=81, interval=3, height=480, width=832),  # seed defaults
            FrameSettings(frame_num=17, interval=2, height=352, width=640)]  # ReViSE's script


def run(quick: bool, repeats: int, threads: int, cache: Path) -> list[Row]:
    rows = []
    for path, desc in _inputs(quick, cache):
        for s in _settings(quick):
            label = f"{s.frame_num}f / int {s.interval} / {s.height}x{s.width}"
            try:
                ref = original_style(path, s, threads)
            except VideoError as exc:
                log.info("%s %s: %s (skipped)", path.name, label, exc.reason)
                continue
            got = ours(path, s, threads)
            identical = torch.equal(ref, got) and torch.equal(normalise_pixels(ours_u8(path, s, threads)), ref)
            times: dict[str, list[float]] = {"ours": [], "u8": [], "orig": [], "u8_cpu": [], "orig_cpu": []}
            for _ in range(repeats):  # interleaved so drift affects all equally
                for key, fn in (("ours", ours), ("u8", ours_u8), ("orig", original_style)):
                    t0, c0 = time.perf_counter(), time.process_time()  # CPU time of all threads
                    fn(path, s, threads)
                    times[key].append(time.perf_counter() - t0)
                    times.get(f"{key}_cpu", []).append(time.process_time() - c0)
            med = {k: statistics.median(v) for k, v in times.items()}
            rows.append(Row(path.name, desc, label, med["ours"], med["u8"], med["orig"], identical,
                            med["u8_cpu"], med["orig_cpu"]))
            log.info("%s %s: ours %.3fs (uint8 %.3fs) original-style %.3fs", path.name, label, med["ours"],
                     med["u8"], med["orig"])
    return rows


def table(rows: list[Row], repeats: int, threads: int) -> str:
    lines = [f"Frame reading, seconds per video (median of {repeats} interleaved runs, threads="
             f"{threads or 'library default'}: decoder threads for both readers, and ours also crops/resizes on "
             f"that many threads when > 1); ratio = original-style / ours (wall clock).", "",
             "| video | content | settings | ours (s) | ours, uint8 (s) | original-style (s) | ratio | ratio, uint8 "
             "| CPU s: ours uint8 / original-style | identical |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.video} | {r.desc} | {r.settings} | {r.ours_s:.3f} | {r.ours_u8_s:.3f} | {r.orig_s:.3f} | "
                     f"{r.ratio:.2f}x | {r.ratio_u8:.2f}x | {r.ours_u8_cpu:.2f} / {r.orig_cpu:.2f} | "
                     f"{'yes' if r.identical else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny generated inputs, one repeat (seconds)")
    ap.add_argument("--repeats", type=int, default=None, help="runs per reader (default 3, quick 1)")
    ap.add_argument("--threads", type=int, default=0, help="decoder threads for both readers (0 = default)")
    ap.add_argument("--cache", type=Path, default=None, help="folder for generated inputs")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    repeats = args.repeats or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or (Path(tmp) if args.quick else Path(tempfile.gettempdir()) / "revise_prep_bench")
        cache.mkdir(parents=True, exist_ok=True)
        rows = run(args.quick, repeats, args.threads, cache)
    text = table(rows, repeats, args.threads)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    if not rows:
        print("no benchmark rows", file=sys.stderr)
        return 1
    bad = [r for r in rows if not r.identical]
    assert not bad, f"readers disagree on: {[(r.video, r.settings) for r in bad]}"
    return 0


if __name__ == "__main__":
    sys.exit(main())
