"""Frame sampling indices and image -> pixel tensor preprocessing of the VILA AR path (VILA_SPEC sections 2, 10).

Recipe (bit-exact with the original): ``convert("RGB")`` -> optional ``expand2square`` -> BICUBIC resize to SxS ->
float32 ``x * rescale`` -> ``(v - mean) / std`` -> model dtype, stacked as ``[F, 3, S, S]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from PIL import Image

from .resample import resize_bicubic_pillow10

logger = logging.getLogger(__name__)

Resampler = Literal["pillow10", "pillow"]


def ar_frame_indices(num_frames_in_video: int, num_samples: int = 8) -> list[int]:
    """Upstream ``np.linspace(0, n - 2, 8, dtype=int)``: floors (numpy >= 1.20), never samples the last frame.

    ``n = 1`` gives ``[0, -1, ...]``; a negative index means "from the end", as decord reads it.
    """
    return [int(i) for i in np.linspace(0, num_frames_in_video - 2, num_samples, dtype=int)]


def expand2square(image: Image.Image, fill: tuple[int, ...]) -> Image.Image:
    """Centre ``image`` on a square canvas of its longer side (upstream ``expand2square``)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def resize_square(image: Image.Image, size: int, resampler: Resampler = "pillow10") -> np.ndarray:
    """BICUBIC resize of an RGB image to ``size x size`` as uint8 ``[S, S, 3]``.

    ``"pillow10"`` reproduces Pillow 10.4 (the original's pin) exactly; ``"pillow"`` uses the installed Pillow,
    which differs on some shapes (e.g. portrait 120x360) by a few /255.
    """
    if image.size == (size, size):
        return np.asarray(image, dtype=np.uint8)
    if resampler == "pillow10":
        return resize_bicubic_pillow10(np.asarray(image, dtype=np.uint8), size, size)
    if resampler == "pillow":
        return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
    raise ValueError(f"unknown resampler {resampler!r}")


def preprocess_images(
    images: Sequence[Image.Image],
    *,
    size: int,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    rescale_factor: float = 1 / 255,
    aspect_mode: str | None = "resize",
    dtype: torch.dtype = torch.float16,
    resampler: Resampler = "pillow10",
) -> torch.Tensor:
    """Pixel tensor ``[F, 3, S, S]`` in ``dtype`` for the SigLIP tower (upstream ``process_images`` + ``.half()``).

    ``aspect_mode``: ``"resize"`` (VILA1.5) and anything else resize straight to SxS (the SigLIP processor does
    the same); ``"pad"`` first pads to a square with ``int(mean * 255)`` grey (127 for 0.5).
    """
    if not images:
        raise ValueError("preprocess_images needs at least one image")
    fill = tuple(int(m * 255) for m in mean)
    mean_arr = np.asarray(mean, dtype=np.float32)
    std_arr = np.asarray(std, dtype=np.float32)
    arrays = []
    for image in images:
        rgb = image.convert("RGB")
        if aspect_mode == "pad":
            rgb = expand2square(rgb, fill)
        pixels = resize_square(rgb, size, resampler)
        # SiglipImageProcessor: rescale in float64 then float32; normalise in float32.
        scaled = (pixels.astype(np.float64) * rescale_factor).astype(np.float32)
        arrays.append(((scaled - mean_arr) / std_arr).astype(np.float32).transpose(2, 0, 1))
    # C-contiguous NCHW: a channels-last view would send the conv to another kernel (different fp16 rounding).
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays))).to(dtype).contiguous()
