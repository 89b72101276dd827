"""Crop box and tensor conversion (SPEC §Step 1.5)."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file

from revise_prep.testing.exact import assert_exact
from revise_prep.video.transform import crop_box, frame_to_tensor, frames_to_tensor


def explicit_box(src_h: int, src_w: int, tgt_h: int, tgt_w: int) -> tuple[int, int, int, int]:
    """The SPEC formula restated; offsets rounded half-to-even with Decimal instead of round()."""
    r = tgt_w / tgt_h  # the original uses a float ratio; keep it so int() truncation agrees
    if src_w < src_h * r:
        ch, cw = int(src_w / r), src_w
    else:
        ch, cw = src_h, int(src_h * r)
    def half(v: int) -> int:
        return int((Decimal(v) / 2).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))

    return half(src_h - ch), half(src_w - cw), ch, cw


@settings(max_examples=500, deadline=None)
@given(*(st.integers(min_value=1, max_value=3000) for _ in range(4)))
def test_crop_box_matches_explicit_formula(src_h, src_w, tgt_h, tgt_w):
    box = crop_box(src_h, src_w, tgt_h, tgt_w)
    assert box == explicit_box(src_h, src_w, tgt_h, tgt_w)
    top, left, ch, cw = box
    assert 0 <= top and top + ch <= src_h and 0 <= left and left + cw <= src_w


def test_crop_box_half_to_even_examples():
    # p07: 1280x720 -> 50x90: crop 711x1280, offset (720-711)/2 = 4.5 -> 4 (half to even, not 5)
    assert crop_box(720, 1280, 50, 90) == (4, 0, 711, 1280)
    # p15/p24: 320x180 -> 64x112: crop 180x315, left (320-315)/2 = 2.5 -> 2
    assert crop_box(180, 320, 64, 112) == (0, 2, 180, 315)
    assert crop_box(640, 640, 64, 112)[2:] == (365, 640)


def test_crop_box_against_fixture_cases(reference):
    cases = json.loads((reference / "frames" / "cases.json").read_text())["cases"]
    seen = 0
    for c in cases:
        if c.get("crop") and c.get("source_resolution"):
            res = c["source_resolution"]
            top, left, ch, cw = crop_box(res["height"], res["width"], *c["target_size"])
            assert_exact("frames.crop_box", [top, left, ch, cw],
                         [c["crop"]["crop_top"], c["crop"]["crop_left"], *c["crop"]["crop_size_hw"]], case=c["id"])
            seen += 1
    assert seen >= 15


def test_frame_to_tensor_values_and_shape():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, size=(90, 160, 3), dtype=np.uint8)
    t = frame_to_tensor(frame, 36, 64)
    assert t.shape == (3, 36, 64) and t.dtype == torch.float32
    # independent path: PIL crop + resize, then the textbook formula in float64 rounded to float32
    top, left, ch, cw = (0, 0, 90, 160)
    img = Image.fromarray(frame).crop((left, top, left + cw, top + ch)).resize((64, 36), Image.BILINEAR)
    ref = (np.asarray(img).astype(np.float64) / 255.0 - 0.5) / 0.5
    assert np.abs(t.permute(1, 2, 0).numpy() - ref).max() < 1e-6
    assert t.min() >= -1 and t.max() <= 1


def test_extremes_map_to_minus_one_and_one():
    black = np.zeros((20, 20, 3), np.uint8)
    white = np.full((20, 20, 3), 255, np.uint8)
    assert torch.all(frame_to_tensor(black, 8, 8) == -1.0)
    assert torch.all(frame_to_tensor(white, 8, 8) == 1.0)


def test_channel_order_is_rgb():
    frame = np.zeros((10, 10, 3), np.uint8)
    frame[..., 0] = 255  # red
    t = frame_to_tensor(frame, 4, 4)
    assert torch.all(t[0] == 1.0) and torch.all(t[1] == -1.0) and torch.all(t[2] == -1.0)


def test_frames_to_tensor_stacks_single_frames():
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, size=(48, 80, 3), dtype=np.uint8) for _ in range(3)]
    batch = frames_to_tensor(frames, 24, 24)
    assert batch.shape == (3, 3, 24, 24)
    for i, f in enumerate(frames):
        assert torch.equal(batch[i], frame_to_tensor(f, 24, 24))
    assert frames_to_tensor([], 24, 24).shape == (0, 3, 24, 24)


def test_rejects_non_uint8():
    with pytest.raises(ValueError):
        frame_to_tensor(np.zeros((4, 4, 3), np.float32), 2, 2)


def test_reproduces_fixture_frames_from_pyav_decode(reference):
    """Decode p07's frames ourselves (PyAV) and check the transform alone against the stored tensor."""
    import av

    case = next(c for c in json.loads((reference / "frames" / "cases.json").read_text())["cases"] if c["id"] == "p07")
    expected = load_file(reference / case["file"])["frames"]
    frames = []
    with av.open(str(reference / case["video"])) as cont:
        for i, fr in enumerate(cont.decode(video=0)):
            if i in case["frame_indices"]:
                frames.append(fr.to_ndarray(format="rgb24"))
            if i >= max(case["frame_indices"]):
                break
    got = frames_to_tensor(frames, *case["target_size"])
    assert_exact("frames.tensor", got, expected, case="p07 transform alone")


def test_lookup_table_equals_torchvision_style_ops():
    """All 256 levels at many positions: the LUT must give what ToTensor + Normalize compute in torch."""
    from revise_prep.video.transform import normalise_u8

    u8 = np.tile(np.arange(256, dtype=np.uint8), 3 * 37).reshape(37, 256, 3)
    ref = torch.from_numpy(u8).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    mean = torch.tensor([0.5, 0.5, 0.5]).view(3, 1, 1)
    ref = ref.sub_(mean).div_(mean.clone())
    assert torch.equal(torch.from_numpy(normalise_u8(u8)), ref)


def test_normalise_pixels_equals_frame_transform():
    """uint8 hand-off: resize now, normalise later (on the encoder's device) gives the same floats."""
    from revise_prep.video.transform import frame_to_u8_into, normalise_pixels

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (50, 90, 3), dtype=np.uint8)
    u8 = np.empty((3, 24, 40), np.uint8)
    frame_to_u8_into(frame, u8)
    ref = torch.from_numpy(frame).permute(2, 0, 1)  # every level, independent of the LUT: torch's own ops
    levels = torch.arange(256, dtype=torch.uint8).view(1, 16, 16).expand(3, 16, 16)
    expected_levels = levels.to(torch.float32).div(255).sub(0.5).div(0.5)
    assert torch.equal(normalise_pixels(levels), expected_levels)  # non-contiguous input too
    assert torch.equal(normalise_pixels(torch.from_numpy(u8)), frame_to_tensor(frame, 24, 40))
    assert normalise_pixels(ref).shape == (3, 50, 90)
    from revise_prep.video.transform import _lut_on  # the gather used on GPUs, checked here on the CPU

    assert torch.equal(_lut_on(torch.device("cpu"))[levels.int()], expected_levels)
    with pytest.raises(ValueError, match="uint8"):
        normalise_pixels(torch.zeros(3, 2, 2))
