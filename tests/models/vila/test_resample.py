"""The banded ``resize_bicubic_pillow10`` is bit-identical to the original dense port (and so to Pillow 10.4)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from revise_prep.models.vila.resample import _resize_bicubic_pillow10_dense, resize_bicubic_pillow10


def _check(image: np.ndarray, width: int, height: int) -> np.ndarray:
    got = resize_bicubic_pillow10(image, width, height)
    want = _resize_bicubic_pillow10_dense(image, width, height)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    assert got.shape == want.shape
    assert np.array_equal(got, want), (image.shape, width, height)
    return got


def test_random_shapes_match_dense_reference() -> None:
    rng = np.random.default_rng(1234)
    for _ in range(400):
        in_h, in_w = (int(v) for v in rng.integers(1, 80, 2))
        out_h, out_w = (int(v) for v in rng.integers(1, 130, 2))
        if rng.random() < 0.15:
            out_h = in_h  # vertical pass skipped
        if rng.random() < 0.15:
            out_w = in_w  # horizontal pass skipped
        channels = int(rng.choice([1, 3, 3, 4]))
        image = rng.integers(0, 256, (in_h, in_w, channels), dtype=np.uint8)
        if channels == 1 and rng.random() < 0.5:
            image = image[:, :, 0]
        _check(image, out_w, out_h)


@pytest.mark.parametrize("in_hw, out_wh", [
    ((1, 1), (5, 3)), ((1, 1), (1, 1)), ((1, 7), (1, 1)), ((7, 1), (1, 1)), ((1, 9), (4, 1)), ((9, 1), (1, 4)),
    ((1, 40), (384, 384)), ((40, 1), (384, 384)), ((2, 3), (384, 384)), ((300, 200), (1, 1)),
    ((500, 9), (3, 7)), ((13, 1000), (7, 5)), ((37, 41), (37, 80)), ((37, 41), (90, 41)), ((37, 41), (41, 37)),
    ((64, 64), (64, 64)), ((121, 77), (120, 78)),
])
def test_edge_shapes_match_dense_reference(in_hw, out_wh) -> None:
    rng = np.random.default_rng(sum(in_hw) * 1000 + sum(out_wh))
    image = rng.integers(0, 256, (*in_hw, 3), dtype=np.uint8)
    _check(image, *out_wh)


def test_extreme_values_and_views() -> None:
    # Alternating black/white maximises the bicubic overshoot, so both passes must clip (both ends).
    checker = ((np.indices((90, 130)).sum(axis=0) % 2) * 255).astype(np.uint8)
    for size in [(384, 384), (41, 29), (130, 200), (130, 37)]:
        out = _check(np.repeat(checker[:, :, None], 3, axis=2), *size)
        if size == (384, 384):
            assert out.min() == 0 and out.max() == 255
    rng = np.random.default_rng(7)
    big = rng.integers(0, 256, (200, 300, 4), dtype=np.uint8)
    _check(big[10:150:2, 5:290, :3], 97, 61)  # non-contiguous view
    _check(np.full((50, 60, 3), 255, np.uint8), 33, 80)
    _check(np.zeros((50, 60, 3), np.uint8), 80, 33)


def test_no_op_returns_equal_copy() -> None:
    image = np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = resize_bicubic_pillow10(image, 30, 20)
    assert np.array_equal(out, image) and not np.shares_memory(out, image)


@pytest.mark.parametrize("in_hw", [(720, 1280), (1080, 1920)])
def test_video_frames_to_siglip_size(in_hw) -> None:
    rng = np.random.default_rng(in_hw[0])
    image = rng.integers(0, 256, (*in_hw, 3), dtype=np.uint8)
    # Smooth content too (random noise is the worst case for clipping, not for rounding).
    grad = np.linspace(0, 255, in_hw[1])[None, :, None] * np.linspace(0.2, 1, in_hw[0])[:, None, None]
    image[: in_hw[0] // 2] = grad[: in_hw[0] // 2].astype(np.uint8)
    got = _check(image, 384, 384)
    # On these shapes Pillow 13 agrees with 10.4, so the native resize is a second, independent reference.
    native = np.asarray(Image.fromarray(image).resize((384, 384), Image.Resampling.BICUBIC))
    assert np.array_equal(got, native)


def test_matches_native_pillow_on_small_square() -> None:
    image = np.random.default_rng(98).integers(0, 256, (98, 98, 3), dtype=np.uint8)
    got = _check(image, 384, 384)
    native = np.asarray(Image.fromarray(image).resize((384, 384), Image.Resampling.BICUBIC))
    assert np.array_equal(got, native)


def test_rejects_bad_input() -> None:
    with pytest.raises(TypeError):
        resize_bicubic_pillow10(np.zeros((4, 4, 3), np.float32), 2, 2)
    with pytest.raises(ValueError):
        resize_bicubic_pillow10(np.zeros((4, 4, 3), np.uint8), 0, 2)
