"""``revise-prep preview``: layout size, re-decoded tiles equal step 1's frames, VAE rows, mp4, meta-less records."""

from __future__ import annotations

import pickle

import av
import numpy as np
import pytest
import torch
from PIL import Image

from revise_prep.cli import main
from revise_prep.inputs import Sample
from revise_prep.models.wan_vae import WanVAE
from revise_prep.pipeline.stage import WorkItem
from revise_prep.pipeline.step1 import Step1Stage
from revise_prep.settings import FrameSettings
from revise_prep.models.umt5 import UMT5TextEncoder
from revise_prep.testing.tiny_models import make_tiny_umt5, make_tiny_wan_vae
from revise_prep.testing.videos import make_video
from revise_prep.video import read_clip

# Source 80x48 (12 frames: interval lowered 3 -> 2, wider aspect: cropped), target 64x40 (16 frames).
SETTINGS = FrameSettings(frame_num=5, interval=3, skip=1, height=32, width=48)
PAD, LABEL_H = 4, 14  # the documented layout constants


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("preview")
    make_video(root / "videos" / "src.mp4", frames=12, width=80, height=48, seed=3)
    make_video(root / "videos" / "tgt.mp4", frames=16, width=64, height=40, seed=5)
    vae_file = make_tiny_wan_vae(root / "wan", "original")
    vae = WanVAE.load(vae_file)
    t5 = UMT5TextEncoder.load(make_tiny_umt5(root / "wan", "original"), dtype="float32", text_len=16)
    stage = Step1Stage(SETTINGS, vae, t5)  # step 1's own decode/encode with the real (tiny) models
    sample = Sample(0, "videos/src.mp4", "videos/tgt.mp4", "Make the moving shapes glow at night.",
                    video_root=str(root))
    record = stage.encode(stage.decode(WorkItem(0, "tgt", root / "tgt.pkl", sample)))
    (root / "tgt.pkl").write_bytes(pickle.dumps(record))
    original = {k: v for k, v in record.items() if k != "meta"}  # the original script's six keys
    (root / "orig.pkl").write_bytes(pickle.dumps(original))
    clips = {role: read_clip(root / "videos" / f"{role}.mp4", SETTINGS) for role in ("src", "tgt")}
    return {"root": root, "vae_file": vae_file, "vae": vae, "record": record, "clips": clips}


def _size(n_cols: int, n_rows: int, tile_h: int, tile_w: int) -> tuple[int, int]:
    """The documented formula, written out independently of the implementation."""
    return (n_cols * tile_w + (n_cols + 1) * PAD, n_rows * (LABEL_H + tile_h) + (n_rows + 1) * PAD)


def _tile(img: np.ndarray, row: int, col: int, tile_h: int = 32, tile_w: int = 48) -> np.ndarray:
    x = PAD + col * (tile_w + PAD)
    y = PAD + row * (LABEL_H + tile_h + PAD) + LABEL_H
    return img[y:y + tile_h, x:x + tile_w]


def _u8(frame: torch.Tensor) -> np.ndarray:
    """Step-1 frame [3,H,W] in [-1,1] -> HxWx3 uint8 (exact inverse of its normalisation)."""
    return ((frame * 0.5 + 0.5) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _preview(setup, *args: str) -> int:
    return main(["preview", *args, "--video-root", str(setup["root"])])


def test_sheet_without_vae(setup, tmp_path):
    png = tmp_path / "sheet.png"
    assert _preview(setup, str(setup["root"] / "tgt.pkl"), "--out", str(png)) == 0
    img = np.asarray(Image.open(png).convert("RGB"))
    assert (img.shape[1], img.shape[0]) == _size(5, 2, 32, 48)  # 5 frames (< --max-frames 9), source + target
    src, tgt = setup["clips"]["src"], setup["clips"]["tgt"]
    assert src.interval == 2 and tgt.interval == 3  # the lowered interval is part of what is checked
    assert np.array_equal(_tile(img, 0, 3), _u8(src.frames[3]))
    assert np.array_equal(_tile(img, 1, 2), _u8(tgt.frames[2]))
    assert not np.array_equal(_tile(img, 1, 2), _u8(tgt.frames[1]))  # frames differ: the index mapping matters


def test_sheet_with_vae_and_video(setup, tmp_path):
    png, mp4 = tmp_path / "vae.png", tmp_path / "vae.mp4"
    rc = _preview(setup, str(setup["root"] / "tgt.pkl"), "--out", str(png), "--vae", str(setup["vae_file"]),
                  "--max-frames", "3", "--video", str(mp4))
    assert rc == 0
    img = np.asarray(Image.open(png).convert("RGB"))
    assert (img.shape[1], img.shape[0]) == _size(3, 4, 32, 48)  # columns at frames 0, 2, 4; 4 rows
    src, tgt = setup["clips"]["src"], setup["clips"]["tgt"]
    assert np.array_equal(_tile(img, 0, 2), _u8(src.frames[4]))
    assert np.array_equal(_tile(img, 2, 1), _u8(tgt.frames[2]))
    # row 3: the target latent decoded through the VAE (independently un-normalised here)
    model = setup["vae"].model
    mean = torch.tensor(model.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(model.config.latents_std).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        decoded = model.decode(setup["record"]["latent_feature_tgt"][None] * std + mean).sample[0]
    expected = _u8(decoded[:, 4].clamp(-1, 1))
    assert np.abs(_tile(img, 3, 2).astype(int) - expected.astype(int)).max() <= 1
    assert not np.array_equal(_tile(img, 3, 2), _tile(img, 2, 2))
    with av.open(str(mp4)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    width, height = _size(1, 4, 32, 48)
    assert len(frames) == SETTINGS.frame_num
    assert frames[0].shape == (height + height % 2, width + width % 2, 3)


def test_record_without_meta(setup, tmp_path, caplog):
    orig = str(setup["root"] / "orig.pkl")
    assert _preview(setup, orig, "--out", str(tmp_path / "x.png")) == 2  # no meta, no --sampling-rate
    assert "--sampling-rate" in caplog.text
    png = tmp_path / "orig.png"
    assert _preview(setup, orig, "--out", str(png), "--sampling_rate", "3", "--skip-num", "1",
                    "--target-video", "videos/tgt.mp4") == 0
    img = np.asarray(Image.open(png).convert("RGB"))
    assert (img.shape[1], img.shape[0]) == _size(5, 2, 32, 48)  # size from the latent (x8), frames from the rule
    assert np.array_equal(_tile(img, 0, 4), _u8(setup["clips"]["src"].frames[4]))
    assert np.array_equal(_tile(img, 1, 4), _u8(setup["clips"]["tgt"].frames[4]))


def test_rows_without_target_video(setup, tmp_path):
    png = tmp_path / "src_only.png"
    assert _preview(setup, str(setup["root"] / "orig.pkl"), "--out", str(png), "--sampling-rate", "3",
                    "--skip-num", "1") == 0
    assert Image.open(png).size == _size(5, 1, 32, 48)
