"""The demo: real pipeline, random tiny models, generated videos — a self-contained end-to-end run.

Everything is built locally (no network): a few short PyAV videos with motion, an edit-pair JSON,
and tiny random-weight checkpoints of the real architectures saved in the original Wan layout.
The numbers in the records are meaningless (random models); the pipeline that makes them is real.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

# (source name, target name, size (w, h), frames, instruction)
DEMO_PAIRS = [
    ("clip_a_src", "clip_a_tgt", (160, 96), 24, "What if the red square turned into a slowly spinning blue disc?"),
    ("clip_b_src", "clip_b_tgt", (192, 108), 30, "Make the whole scene look like it is covered in fresh snow."),
    ("clip_c_src", "clip_c_tgt", (96, 160), 24, "Replace the moving shapes with falling autumn leaves."),
    ("clip_d_src", "clip_d_tgt", (160, 96), 8, "This pair is too short for the requested frame count."),
    ("clip_e_src", "clip_e_tgt", (160, 96), 24, "short"),
]


def make_demo_inputs(root: Path) -> Path:
    """Write the demo videos and ``pairs.json`` under ``root``; returns the JSON path."""
    from revise_prep.testing.videos import make_video

    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (src, tgt, (w, h), frames, instruction) in enumerate(DEMO_PAIRS):
        for seed, name in enumerate((src, tgt)):
            path = videos / f"{name}.mp4"
            if not path.exists():
                make_video(path, frames=frames, width=w, height=h, seed=10 * i + seed)
        entries.append({"source_video_path": f"videos/{src}.mp4", "target_video_path": f"videos/{tgt}.mp4",
                        "instruction": instruction, "type": "demo"})
    path = root / "pairs.json"
    path.write_text(json.dumps(entries, indent=2) + "\n")
    return path


def make_demo_models(root: Path) -> Path:
    """Tiny random Wan VAE + umT5 (+ tokenizer) in the original Wan release layout."""
    from revise_prep.testing.tiny_models import make_tiny_wan_release

    ckpt = root / "checkpoints" / "Wan2.1-tiny"
    if not (ckpt / "Wan2.1_VAE.pth").exists():
        make_tiny_wan_release(ckpt, layout="original")
    return ckpt


def run_demo(output_dir: str | Path = "revise-prep-demo", *, num_workers: int = 2) -> dict:
    """Build inputs and models under ``output_dir`` and run step 1 on them; returns the summary."""
    from revise_prep.pipeline.step1 import run_step1
    from revise_prep.settings import FrameSettings, ModelSettings, RunSettings

    root = Path(output_dir).resolve()
    start = time.perf_counter()
    pairs = make_demo_inputs(root)
    ckpt = make_demo_models(root)
    run = RunSettings(input=str(pairs), output_dir=str(root / "vae_features"), video_root=str(root),
                      num_workers=num_workers)
    frames = FrameSettings(frame_num=9, interval=2, skip=0, height=64, width=112)
    models = ModelSettings(ckpt_dir=str(ckpt), device="cpu", vae_dtype="float32", t5_dtype="float32", text_len=64)
    summary = run_step1(run, frames, models)
    summary["wall_seconds"] = round(time.perf_counter() - start, 2)
    summary["output_dir"] = run.output_dir
    return summary
