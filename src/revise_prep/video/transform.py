"""Centre crop to the target aspect ratio, PIL bilinear resize and [-1, 1] normalisation (SPEC §Step 1.5).

Reproduces the original torchvision/PIL transform bit for bit: PIL ``crop`` + ``resize((w, h), BILINEAR)``
(antialiased), then ``x/255`` and ``(x-0.5)/0.5`` in float32.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["crop_box", "frame_to_tensor", "frame_to_tensor_into", "frame_to_u8_into", "frames_to_tensor",
           "normalise_pixels", "normalise_u8"]


def crop_box(src_h: int, src_w: int, tgt_h: int, tgt_w: int) -> tuple[int, int, int, int]:
    """(top, left, crop_h, crop_w) of the centred crop with the target's aspect ratio.

    ``r = tgt_w/tgt_h`` as a float; crop is ``(int(src_w/r), src_w)`` when ``src_w < src_h*r``, else
    ``(src_h, int(src_h*r))``; offsets use Python's ``round`` (half to even), as the original does.
    """
    r = tgt_w / tgt_h
    if src_w < src_h * r:
        crop_h, crop_w = int(src_w / r), src_w
    else:
        crop_h, crop_w = src_h, int(src_h * r)
    top = int(round((src_h - crop_h) / 2.0))
    left = int(round((src_w - crop_w) / 2.0))
    return top, left, crop_h, crop_w


def _resize_u8(frame: np.ndarray, tgt_h: int, tgt_w: int) -> np.ndarray:
    """Crop + PIL bilinear resize of one HxWx3 uint8 frame; returns tgt_h x tgt_w x 3 uint8."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 frame, got {frame.dtype} {frame.shape}")
    h, w = frame.shape[:2]
    top, left, ch, cw = crop_box(h, w, tgt_h, tgt_w)
    img = Image.fromarray(frame)
    img = img.crop((left, top, left + cw, top + ch)).resize((tgt_w, tgt_h), Image.BILINEAR)
    return np.asarray(img)  # read-only view is fine: the LUT step writes a new array


def _build_lut() -> np.ndarray:
    """float32 value of each uint8 level after ``/255`` then ``(x-0.5)/0.5``, computed with the same torch ops.

    The normalisation is elementwise on 256 possible inputs, so a lookup table gives the torch result bit
    for bit while avoiding three full-size tensor passes per frame (slow under CPU contention).
    """
    x = torch.arange(256, dtype=torch.uint8).to(torch.float32).div(255.0)
    return x.sub(0.5).div(0.5).numpy().copy()


_LUT = _build_lut()


def normalise_u8(u8: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] in [-1, 1] (ToTensor + Normalize(0.5, 0.5) values)."""
    chw = np.moveaxis(u8, -1, -3)
    if out is None:
        out = np.empty(chw.shape, dtype=np.float32)
    np.take(_LUT, chw, out=out)
    return out


def _normalise(u8: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float32 tensor [..., 3, H, W] in [-1, 1]."""
    return torch.from_numpy(normalise_u8(u8))


def frame_to_tensor_into(frame: np.ndarray, out: np.ndarray) -> None:
    """Transform one RGB uint8 frame into ``out`` (float32 [3, H, W], e.g. a row of a preallocated clip)."""
    np.take(_LUT, np.moveaxis(_resize_u8(frame, out.shape[1], out.shape[2]), -1, 0), out=out)


def frame_to_u8_into(frame: np.ndarray, out: np.ndarray) -> None:
    """Crop + resize one RGB uint8 frame into ``out`` (uint8 [3, H, W]) without normalising.

    Pipelines hand these 4x smaller frames to the encoder, which normalises them on its device
    (:func:`normalise_pixels`) with the same values.
    """
    out[...] = np.moveaxis(_resize_u8(frame, out.shape[1], out.shape[2]), -1, 0)


@functools.cache
def _lut_on(device: torch.device) -> torch.Tensor:
    """The table on ``device``, copied once: a per-clip copy from pageable memory would wait for the GPU."""
    return torch.from_numpy(_LUT).to(device)


def normalise_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 tensor of any shape and device -> float32 of the same shape and device, the step-1 values.

    A table lookup, so the result is bit-identical on every device (CUDA divides by a scalar as a
    multiplication by its reciprocal, which would not be).
    """
    if pixels.dtype != torch.uint8:
        raise ValueError(f"expected uint8 pixels, got {pixels.dtype}")
    if pixels.device.type == "cpu":
        return torch.from_numpy(np.take(_LUT, pixels.numpy()))
    return _lut_on(pixels.device)[pixels.int()]


def frame_to_tensor(frame: np.ndarray, tgt_h: int, tgt_w: int) -> torch.Tensor:
    """One RGB uint8 HxWx3 frame -> float32 [3, tgt_h, tgt_w] in [-1, 1] (use as frames arrive)."""
    return _normalise(_resize_u8(frame, tgt_h, tgt_w))


def frames_to_tensor(frames: Sequence[np.ndarray], tgt_h: int, tgt_w: int) -> torch.Tensor:
    """RGB uint8 HxWx3 frames -> float32 [T, 3, tgt_h, tgt_w] in [-1, 1]."""
    if len(frames) == 0:
        return torch.empty((0, 3, tgt_h, tgt_w), dtype=torch.float32)
    return _normalise(np.stack([_resize_u8(f, tgt_h, tgt_w) for f in frames]))
