"""Pillow 10.4's BICUBIC resize, re-implemented in numpy so the VILA pixels match the original bit for bit.

The original pins Pillow 10.4.0; Pillow 13 resizes some shapes (e.g. 120x360 portraits) differently by up to a
few /255, which moves the tiny model's output by ~0.04. This is a port of 10.4's ``libImaging/Resample.c`` for
8-bit images: double-precision coefficients normalised per output pixel, rounded to 22-bit fixed point, a
horizontal pass then a vertical pass, each rounding and clipping to uint8.

The fixed-point sums are exact integers below 2**53, so they are computed as float64 matrix products (any
summation order gives the same exact result). Each output pixel reads only ``ksize`` neighbouring inputs, so the
coefficient matrix is cut into bands of a few consecutive outputs and each band multiplies only the input span
it touches (``_bands``); the horizontal pass also runs over chunks of image rows so its float64 copy of the input
stays small and in cache. The weights are pre-scaled by 2**-22 (exact, a power of two), so ``floor(acc + 0.5)``
is Pillow's ``(acc + (1 << 21)) >> 22``. ``_resize_bicubic_pillow10_dense`` is the original dense version, kept
as the reference for the tests and ``bench/resample.py``.
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


def _resize_bicubic_pillow10_dense(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The original dense port, kept as the reference for tests and ``bench/resample.py`` (slow: dense products).

    Resizes an ``[H, W, C]`` (or ``[H, W]``) uint8 array to ``height x width`` exactly as Pillow 10.4 BICUBIC.
    """
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


_INV_ONE = 1.0 / _ONE  # exact: a power of two
_BAND = 8  # consecutive outputs per band: small enough to skip most zeros, large enough for BLAS to be efficient
_CHUNK_BYTES = 1 << 21  # float64 bytes of input rows converted at once in the horizontal pass


@lru_cache(maxsize=64)
def _bands(in_size: int, out_size: int) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """``(out0, out1, in0, in1, weights[out1 - out0, in1 - in0] * 2**-22)`` covering every output.

    Cut from the same coefficient matrix as the dense reference (so the weights are identical); ``in0:in1`` spans
    every non-zero coefficient of the band's outputs.
    """
    dense = _weights(in_size, out_size)
    nonzero = dense != 0
    bands = []
    for o0 in range(0, out_size, _BAND):
        o1 = min(o0 + _BAND, out_size)
        cols = np.flatnonzero(nonzero[o0:o1].any(axis=0))
        i0, i1 = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 1)
        w = np.ascontiguousarray(dense[o0:o1, i0:i1] * _INV_ONE)
        w.setflags(write=False)
        bands.append((o0, o1, i0, i1, w))
    return tuple(bands)


def _horizontal(arr: np.ndarray, width: int) -> np.ndarray:
    """Horizontal pass of an ``[H, W, C]`` uint8 array: ``[H, width, C]`` float64 holding the clipped uint8 values."""
    in_h, in_w, channels = arr.shape
    bands = _bands(in_w, width)
    out = np.empty((in_h, width, channels))
    rows = max(1, min(in_h, _CHUNK_BYTES // (8 * channels * in_w)))
    buf = np.empty((rows, channels, in_w))
    acc_buf = np.empty((width, rows * channels))
    for r0 in range(0, in_h, rows):
        r1 = min(r0 + rows, in_h)
        n = r1 - r0
        x = buf[:n]
        x[...] = arr[r0:r1].transpose(0, 2, 1)
        x = x.reshape(n * channels, in_w)
        acc = acc_buf[:, :n * channels]
        for o0, o1, i0, i1, w in bands:
            np.matmul(w, x[:, i0:i1].T, out=acc[o0:o1])
        acc += 0.5
        np.clip(acc, 0.0, 255.0, out=acc)  # clip then floor == floor then clip (the bounds are integers)
        np.floor(acc.reshape(width, n, channels).transpose(1, 0, 2), out=out[r0:r1])
    return out


def _vertical(rows: np.ndarray, height: int) -> np.ndarray:
    """Vertical pass of an ``[H, N]`` float64 (or uint8) array: ``[height, N]`` float64, rounded but not clipped."""
    in_h = rows.shape[0]
    out = np.empty((height, rows.shape[1]))
    if rows.dtype != np.float64:
        rows = rows.astype(np.float64)
    for o0, o1, i0, i1, w in _bands(in_h, height):
        np.matmul(w, rows[i0:i1], out=out[o0:o1])
    out += 0.5
    np.floor(out, out=out)
    return out


def resize_bicubic_pillow10(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an ``[H, W, C]`` (or ``[H, W]``) uint8 array to ``height x width`` exactly as Pillow 10.4 BICUBIC.

    Bit-identical to ``_resize_bicubic_pillow10_dense`` (banded products instead of dense ones; see the module doc).
    """
    if image.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {image.dtype}")
    squeeze = image.ndim == 2
    arr = image[:, :, None] if squeeze else image
    in_h, in_w, channels = arr.shape
    if width < 1 or height < 1:
        raise ValueError(f"invalid target size {width}x{height}")
    if in_w == width and in_h == height:
        out = np.array(arr, dtype=np.uint8, order="C")
    else:
        cur = _horizontal(arr, width) if in_w != width else arr
        if in_h != height:
            cur = _vertical(cur.reshape(in_h, width * channels), height).reshape(height, width, channels)
        if cur.dtype != np.uint8:
            np.clip(cur, 0.0, 255.0, out=cur)
            cur = cur.astype(np.uint8)
        out = cur
    return out[:, :, 0] if squeeze else out
