"""The video zoo against the original's decoders: per video, our outcome vs OpenCV's (step 1) and decord's (step 2).

    PYTHONPATH=src python bench/zoo_table.py [--out DIR]

Prints a Markdown table: outcome, interval and indices of a 5-frame clip (interval 3, a 32x48 target in the
video's displayed orientation) for us and OpenCV + PIL, max/mean |delta| over every decoded frame against
OpenCV, and the 8 AR frames against decord. Needs the ``test`` extra (opencv-python-headless, decord).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from revise_prep.errors import VideoError
from revise_prep.models.vila.frames import load_ar_frames
from revise_prep.settings import FrameSettings
from revise_prep.testing.originals import decord_ar_frames, opencv_clip
from revise_prep.testing.zoo import ZOO, build_zoo
from revise_prep.video import probe_video, read_clip, read_frames_rgb


def delta(a: list[np.ndarray], b: list[np.ndarray]) -> str:
    if not a or not b or len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return "n/a"
    d = np.abs(np.stack(a).astype(np.int16) - np.stack(b).astype(np.int16))
    return f"{d.max()} / {d.mean():.3f}"


def compare(name: str, path: Path) -> dict[str, str]:
    info = probe_video(path)
    h, w = info.display_size
    tgt = (48, 32) if h > w else (32, 48)
    s = FrameSettings(frame_num=5, interval=3, height=tgt[0], width=tgt[1])
    try:
        clip = read_clip(path, s)
        ours = f"ok i={clip.interval} {clip.indices[0]}..{clip.indices[-1]}"
    except VideoError as err:
        ours = err.reason
    ref = opencv_clip(path, 5, 3, *tgt)
    theirs = ref.outcome if ref.outcome != "ok" else f"ok i={ref.interval} {ref.indices[0]}..{ref.indices[-1]}"
    mine = read_frames_rgb(path, range(info.num_frames)) if ref.raw else []
    d_cv = delta(mine[:len(ref.raw)], ref.raw) if len(mine) == len(ref.raw) else f"count {len(mine)} vs {len(ref.raw)}"
    dec = decord_ar_frames(path)
    try:
        ar = [np.asarray(im) for im in load_ar_frames(path)]
        ar_out = "ok"
    except VideoError as err:
        ar, ar_out = [], err.reason
    if isinstance(dec, str):
        d_dec, dec_out = "n/a", "error: " + dec[:60]
    else:
        d_dec, dec_out = delta(ar, list(dec[1])), "ok"
    return {"video": name, "codec": f"{info.codec} {info.pix_fmt}", "ours": ours, "opencv": theirs,
            "|d| vs OpenCV (max/mean)": d_cv, "AR ours": ar_out, "decord": dec_out, "|d| vs decord": d_dec}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="folder for the zoo (default: a temporary folder)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        zoo = build_zoo(Path(args.out or tmp))
        rows = [compare(v.name, zoo[v.name]) for v in ZOO]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(r[k] for k in keys) + " |")


if __name__ == "__main__":
    main()
