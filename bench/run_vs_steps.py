"""Wall time of the one-pass ``run`` versus ``vae`` then ``ar`` on the same inputs, side by side in one run.

Inputs: N edit pairs of generated H.264 videos with rich synthetic content (default 1280x720, 60 frames) and
the tiny random-weight models of the three real architectures (what the demo uses); CPU. Each configuration
writes into a fresh folder (a resume would skip the work); the two are interleaved and the median is reported.
Usage: python bench/run_vs_steps.py [--pairs 6] [--repeats 2] [--workers 2] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="2 small pairs, one repeat (smoke test)")
    ap.add_argument("--out", help="write the table (markdown) to this file")
    args = ap.parse_args()

    from revise_prep.pipeline.onepass import ArOptions, run_onepass
    from revise_prep.pipeline.step1 import run_step1
    from revise_prep.pipeline.step2 import ArSettings, run_step2
    from revise_prep.settings import FrameSettings, ModelSettings, RunSettings
    from revise_prep.testing.tiny_models import make_tiny_wan_release
    from revise_prep.testing.tiny_vila import make_tiny_vila
    from revise_prep.testing.videos import make_video

    pairs, repeats = (2, 1) if args.quick else (args.pairs, args.repeats)
    w, h, n = (160, 96, 20) if args.quick else (1280, 720, 60)
    root = Path(tempfile.mkdtemp(prefix="revise-prep-bench-"))
    entries = []
    for i in range(pairs):
        for role in ("src", "tgt"):
            make_video(root / f"p{i}_{role}.mp4", frames=n, width=w, height=h, seed=2 * i + len(role))
        entries.append({"source_video_path": f"p{i}_src.mp4", "target_video_path": f"p{i}_tgt.mp4",
                        "instruction": f"Turn the moving shapes of clip {i} into paper lanterns."})
    (root / "pairs.json").write_text(json.dumps(entries))
    wan = make_tiny_wan_release(root / "wan")
    vila = make_tiny_vila(root / "vila")
    frames = FrameSettings(frame_num=17, interval=3, height=64, width=112)
    models = ModelSettings(ckpt_dir=str(wan), device="cpu", vae_dtype="float32", t5_dtype="float32", text_len=64)

    def run_settings(out: Path) -> RunSettings:
        return RunSettings(input=str(root / "pairs.json"), output_dir=str(out), video_root=str(root),
                           num_workers=args.workers, progress=False)

    times: dict[str, list[float]] = {"vae then ar": [], "run (one pass)": []}
    for r in range(repeats):
        t = time.perf_counter()
        s1 = run_step1(run_settings(root / f"vae{r}"), frames, models)
        s2 = run_step2(ArSettings(data_file=str(root / f"vae{r}"), result_folder=str(root / f"ar{r}"),
                             model_path=str(vila), video_root=str(root), dtype="float16", device="cpu",
                             num_workers=args.workers,
                             progress=False))
        times["vae then ar"].append(time.perf_counter() - t)
        t = time.perf_counter()
        s3 = run_onepass(run_settings(root / f"run{r}"), frames, models, ArOptions(model_path=str(vila)))
        times["run (one pass)"].append(time.perf_counter() - t)
        for summary in (s1, s2, s3):  # a ratio of failed runs would mean nothing
            assert summary["by_status"].get("done") == pairs, summary
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [f"{pairs} pairs of {w}x{h} x {n}-frame H.264 videos, 17 frames / interval 3 / 64x112, tiny models, "
             f"CPU, {args.workers} workers, median of {repeats} (model loading included)", "",
             "| pipeline | wall s | s/sample |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.2f} | {v / pairs:.2f} |" for k, v in med.items()]
    lines += ["", f"ratio (vae then ar) / run: {med['vae then ar'] / med['run (one pass)']:.2f}x"]
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
