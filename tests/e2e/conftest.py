"""Inputs shared by the end-to-end tests: generated videos, an edit-pair list, tiny checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from revise_prep.testing.tiny_models import make_tiny_wan_release
from revise_prep.testing.videos import make_not_a_video, make_truncated, make_video

REPO = Path(__file__).resolve().parents[2]
FRAMES = ["--frame-num", "5", "--sampling-rate", "2", "--target-size", "32,48"]


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@lru_cache(maxsize=1)
def _nobody_problem() -> str | None:
    """Why user 65534 cannot run this checkout's revise-prep with this interpreter, or None when it can."""
    if not shutil.which("setpriv"):
        return "setpriv is unavailable"
    proc = subprocess.run([*NOBODY, sys.executable, "-c", "import revise_prep.cli"], capture_output=True, text=True,
                          cwd="/", env={**os.environ, "HOME": "/tmp"}, timeout=120)
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return (f"user 65534 cannot read this checkout or its Python ({last}); e.g. a clone under a 0700 folder "
            "such as mktemp -d makes")


def as_another_user() -> list[str] | None:
    """Command prefix that runs as user 65534 (``setpriv``) when root, None otherwise; skips the test with the
    reason when root cannot do so here (no setpriv, or that user cannot read the checkout)."""
    if os.geteuid() != 0:
        return None
    problem = _nobody_problem()
    if problem:
        pytest.skip(f"cannot act as another user: {problem}")
    return list(NOBODY)


@pytest.fixture(scope="session")
def wan_release(tmp_path_factory) -> Path:
    return make_tiny_wan_release(tmp_path_factory.mktemp("wan") / "Wan2.1-tiny", layout="original")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """Videos + pairs.json: 3 good pairs (one with a colliding target name), one caption sample, a portrait
    source (orientation skip), a too-short one, a corrupt one, a truncated one, a short prompt, a duplicate."""
    root = tmp_path_factory.mktemp("data")
    v = root / "videos"
    v.mkdir()
    for name, (w, h, n) in {"a_src": (64, 40, 14), "a_tgt": (64, 40, 14), "b_src": (80, 48, 12),
                            "b_tgt": (64, 40, 16), "portrait": (40, 64, 14), "short": (64, 40, 4),
                            "full": (64, 40, 40)}.items():
        make_video(v / f"{name}.mp4", frames=n, width=w, height=h, seed=hash(name) % 1000)
    (v / "other").mkdir()
    make_video(v / "other" / "a_tgt.mp4", frames=12, width=64, height=40, seed=7)
    make_not_a_video(v / "corrupt.mp4")
    make_truncated(v / "full.mp4", v / "cut.mp4", keep_fraction=0.3)
    text = "What if the scene slowly turned into a snowy winter evening?"
    pairs = [
        {"source_video_path": "videos/a_src.mp4", "target_video_path": "videos/a_tgt.mp4", "instruction": text},
        {"source_video_path": "videos/b_src.mp4", "target_video_path": "videos/b_tgt.mp4",
         "instruction": "Make the\nshapes glow.", "type": "Style Edits"},
        {"source_video_path": "videos/portrait.mp4", "target_video_path": "videos/a_tgt.mp4", "instruction": text + "!"},
        {"source_video_path": "videos/short.mp4", "target_video_path": "videos/a_tgt.mp4", "instruction": text + "?"},
        {"source_video_path": "videos/corrupt.mp4", "target_video_path": "videos/a_tgt.mp4", "instruction": text + "."},
        {"source_video_path": "videos/b_src.mp4", "target_video_path": "videos/other/a_tgt.mp4", "instruction": text},
        {"source_video_path": "videos/a_src.mp4", "target_video_path": "videos/b_tgt.mp4", "instruction": "too short"},
        {"source_video_path": "videos/a_src.mp4", "target_video_path": "videos/a_tgt.mp4", "instruction": text},
        {"source_video_path": "videos/cut.mp4", "target_video_path": "videos/b_tgt.mp4", "instruction": text + " 2"},
        {"video": "videos/b_tgt.mp4", "conversations": [{"from": "human", "value": "Describe"},
                                                        {"from": "gpt", "value": "Colourful shapes move across a gradient."}]},
    ]
    (root / "pairs.json").write_text(json.dumps(pairs, indent=1))
    return root


def cli(*args: str, env: dict | None = None, check: bool = True, status: int = 0,
        cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m revise_prep`` in a subprocess, as a user would; with ``check``, its exit status must be
    ``status`` (4: some samples failed, see README "Exit status")."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "revise_prep", *args], capture_output=True, text=True, env=full_env,
                          timeout=600, cwd=cwd)
    if check and proc.returncode != status:
        raise AssertionError(f"revise-prep {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc
