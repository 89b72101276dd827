"""Pillow 10.4's BICUBIC resize, re-implemented in numpy so the VILA pixels match the original bit for bit.

The original pins Pillow 10.4.0; Pillow 13 resizes some shapes (e.g. 120x360 portraits) differently by up to a
few /255, which moves the tiny model's output by ~0.04. This is a port of 10.4's ``libImaging/Resample.c`` for
8-bit images: double-precision coefficients normalised per output pixel, rounded to 22-bit fixed point, a
horizontal pass then a vertical pass, each rounding and clipping to uint8. The fixed-point sums are exact
integers below 2**53, so they are computed as float64 matrix products (fast and still exact).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_PRECISION_BITS = 32 - 8 - 2
_HALF = float(1 << (_PRECISION_BITS - 1))
_ONE = float(1 << _PRECISION_BITS)
_BICUBIC_SUPPORT = 2.0


def _bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's bicubic kernel (a = -0.5)."""
    a = -0.5
    x = np.abs(x)
    inner = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    outer = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, inner, np.where(x < 2.0, outer, 0.0))


@lru_cache(maxsize=64)
def _weights(in_size: int, out_size: int) -> np.ndarray:
    """Dense ``[out, in]`` matrix of the fixed-point coefficients (``precompute_coeffs`` + ``normalize_coeffs_8bpc``)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _BICUBIC_SUPPORT * filterscale
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # C cast truncates toward zero
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = _bicubic((np.arange(xmax) + xmin - center + 0.5) * (1.0 / filterscale))
        total = float(np.sum(w)) if xmax else 0.0
        if total != 0.0:
            w = w / total
        fixed = np.where(w < 0, np.trunc(-0.5 + w * _ONE), np.trunc(0.5 + w * _ONE))
        matrix[xx, xmin:xmin + xmax] = fixed
    matrix.setflags(write=False)
    return matrix


def _round_clip(acc: np.ndarray) -> np.ndarray:
    """``clip8``: add the rounding half, shift right by the precision bits, clamp to 0..255."""
    return np.clip(np.floor((acc + _HALF) / _ONE), 0, 255).astype(np.uint8)


def resize_bicubic_pillow10(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an ``[H, W, C]`` (or ``[H, W]``) uint8 array to ``height x width`` exactly as Pillow 10.4 BICUBIC."""
    if image.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {image.dtype}")
    squeeze = image.ndim == 2
    arr = image[:, :, None] if squeeze else image
    in_h, in_w, channels = arr.shape
    if width < 1 or height < 1:
        raise ValueError(f"invalid target size {width}x{height}")
    out = arr
    if in_w != width:
        acc = out.transpose(0, 2, 1).reshape(-1, in_w).astype(np.float64) @ _weights(in_w, width).T
        out = _round_clip(acc).reshape(in_h, channels, width).transpose(0, 2, 1)
    if in_h != height:
        cur_w = out.shape[1]
        acc = _weights(in_h, height) @ out.reshape(in_h, -1).astype(np.float64)
        out = _round_clip(acc).reshape(height, cur_w, channels)
    out = np.ascontiguousarray(out)
    return out[:, :, 0] if squeeze else out

