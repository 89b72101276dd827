"""The demo: real pipeline, random tiny models, generated videos — a self-contained end-to-end run.

Everything is built locally (no network): a few short PyAV videos with motion, an edit-pair JSON,
and tiny random-weight checkpoints of the three real architectures (Wan2.1 VAE and umT5 in the original
Wan release layout, VILA in its checkpoint layout). The numbers in the records are meaningless (random
models); the pipeline that makes them — ``revise-prep run`` — is the real one.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

# (source name, target name, size (w, h), frames, instruction); the last two show how skips are reported
DEMO_PAIRS = [
    ("clip_a_src", "clip_a_tgt", (192, 108), 40, "What if the red square turned into a slowly spinning blue disc?"),
    ("clip_b_src", "clip_b_tgt", (256, 144), 48, "Make the whole scene look like it is covered in fresh snow."),
    ("clip_c_src", "clip_c_tgt", (160, 90), 36, "Replace the moving shapes with falling autumn leaves."),
    ("clip_d_src", "clip_d_tgt", (160, 90), 12, "This pair is too short for the requested frame count."),
    ("clip_e_src", "clip_e_tgt", (90, 160), 36, "A portrait source cannot fill a landscape target."),
]
FRAME_NUM, INTERVAL, HEIGHT, WIDTH = 17, 2, 64, 112


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


def make_demo_models(root: Path) -> tuple[Path, Path]:
    """Tiny random Wan VAE + umT5 (original Wan layout) and a tiny random VILA checkpoint."""
    from revise_prep.testing.tiny_models import make_tiny_wan_release
    from revise_prep.testing.tiny_vila import make_tiny_vila

    wan, vila = root / "checkpoints" / "Wan2.1-tiny", root / "checkpoints" / "VILA-tiny"
    if not (wan / "Wan2.1_VAE.pth").exists():
        make_tiny_wan_release(wan, layout="original")
    if not (vila / "config.json").exists():
        make_tiny_vila(vila)
    return wan, vila


def run_demo(output_dir: str | Path = "revise-prep-demo", *, num_workers: int = 2) -> dict:
    """Build inputs and models under ``output_dir``, run both steps in one pass, preview one record."""
    from revise_prep.pipeline.onepass import ArOptions, run_onepass
    from revise_prep.records.preview import make_preview
    from revise_prep.settings import FrameSettings, ModelSettings, RunSettings

    root = Path(output_dir).resolve()
    start = time.perf_counter()
    pairs = make_demo_inputs(root)
    wan, vila = make_demo_models(root)
    run = RunSettings(input=str(pairs), output_dir=str(root / "records"), video_root=str(root),
                      num_workers=num_workers, progress=False)
    frames = FrameSettings(frame_num=FRAME_NUM, interval=INTERVAL, height=HEIGHT, width=WIDTH)
    models = ModelSettings(ckpt_dir=str(wan), device="cpu", vae_dtype="float32", t5_dtype="float32", text_len=64)
    summary = run_onepass(run, frames, models, ArOptions(model_path=str(vila), dtype="float32"))
    listed = Path(summary["list_file"]).read_text().splitlines()
    if listed:
        preview = root / "preview.png"
        make_preview(listed[0], preview, video_root=str(root), vae_path=str(wan), max_frames=6)
        summary["preview"] = str(preview)
    summary["wall_seconds"] = round(time.perf_counter() - start, 2)
    summary["output_dir"] = run.output_dir
    return summary
