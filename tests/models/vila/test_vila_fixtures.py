"""Golden cases produced by the original ReViSE code on ``vila/tiny_vila`` (see vila/README.md there).

Default path (Pillow-10.4-compatible resize): every stage and every output is bit-exact on the reference CPU;
the output assertion allows ``OUTPUT_ATOL`` so another CPU's fp16 kernels may round differently. The native
Pillow resize is checked too: bit-exact pixels must give the same tolerance, differing pixels (Pillow 13 vs 10.4,
e.g. p12's portrait) get the looser ``NATIVE_PILLOW_ATOL``.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from revise_prep import errors
from revise_prep.errors import VideoError
from revise_prep.models.vila import VilaARModel, ar_frame_indices, count_frames, load_ar_frames

pytestmark = pytest.mark.fixtures
logger = logging.getLogger(__name__)

CASE_IDS = [f"p{i:02d}" for i in range(1, 14)]
OUTPUT_ATOL = 8e-3  # ~2 fp16 ulps at |x| < 4; observed: 0.0 (bit-exact) on every case
NATIVE_PILLOW_ATOL = 0.06  # Pillow 13 vs 10.4 resize moves p12 by ~0.035 (README: up to 0.04)


@lru_cache(maxsize=None)
def _cases(root: str) -> dict[str, dict[str, Any]]:
    data = json.loads((Path(root) / "cases.json").read_text(encoding="utf-8"))
    return {c["id"]: c for c in data["cases"]}


@lru_cache(maxsize=None)
def _tensors(root: str, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(root) / name))


@pytest.fixture(scope="module")
def vila_root(reference: Path) -> Path:
    root = reference / "vila"
    if not (root / "cases.json").is_file():
        pytest.skip(f"VILA golden cases not found under {root}")
    return root


@pytest.fixture(scope="module")
def golden_model(vila_root: Path) -> VilaARModel:
    return VilaARModel.load(vila_root / "tiny_vila")


def _case(root: Path, cid: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    case = _cases(str(root))[cid]
    return case, _tensors(str(root), case["tensors_file"])


def _media(root: Path, case: dict[str, Any]) -> str | None:
    return str(root / case["media"]) if case["media"] else None


@lru_cache(maxsize=None)
def _images(media: str, is_video: bool) -> tuple[Image.Image, ...]:
    if is_video:
        return tuple(load_ar_frames(media, on_error="black"))
    with Image.open(media) as img:
        img.load()
        return (img.copy(),)


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


@pytest.mark.parametrize("cid", CASE_IDS)
def test_prompt_and_ids(golden_model: VilaARModel, vila_root: Path, cid: str) -> None:
    case, tensors = _case(vila_root, cid)
    assert golden_model.build_prompt(case["task_type"], case["prompt"]) == case["template_prompt"]
    ids = golden_model.input_ids(case["task_type"], case["prompt"])
    assert ids == case["input_ids"] == tensors["input_ids"][0].tolist()
    assert ids.count(-200) == case["num_image_placeholders"]
    assert ids.count(golden_model.pad_id) == case["num_pad_ids_in_input"]


@pytest.mark.parametrize("cid", [c for c in CASE_IDS if c <= "p06"] + ["p13"])
def test_frame_indices(vila_root: Path, cid: str) -> None:
    case, _ = _case(vila_root, cid)
    video = case["video"]
    path = Path(_media(vila_root, case))
    if video["black_frame_fallback"]:
        with pytest.raises(VideoError) as info:
            count_frames(path)
        assert info.value.reason == errors.DECODE_ERROR
        return
    assert count_frames(path) == video["num_frames"]
    assert ar_frame_indices(video["num_frames"]) == video["frame_indices"]


@pytest.mark.parametrize("cid", [c for c in CASE_IDS if c not in ("p07", "p08")])
def test_pixel_values_bit_exact(golden_model: VilaARModel, vila_root: Path, cid: str) -> None:
    case, tensors = _case(vila_root, cid)
    images = _images(_media(vila_root, case), case["task"] == "vid_edit")
    pixels = golden_model.pixel_values(list(images))
    assert pixels.dtype == torch.float16 and pixels.shape == tensors["pixel_values"].shape
    assert torch.equal(pixels, tensors["pixel_values"])


@pytest.mark.parametrize("cid", [c for c in CASE_IDS if c not in ("p07", "p08")])
def test_tower_projector_splice(golden_model: VilaARModel, vila_root: Path, cid: str) -> None:
    case, tensors = _case(vila_root, cid)
    feats = golden_model.image_features(tensors["pixel_values"])
    assert _max_abs(feats, tensors["image_features"]) <= OUTPUT_ATOL
    spliced = golden_model.splice(case["input_ids"], tensors["image_features"])
    assert torch.equal(spliced, tensors["llm_inputs_embeds"])


@pytest.mark.parametrize("cid", CASE_IDS)
def test_output(golden_model: VilaARModel, vila_root: Path, cid: str, record_property) -> None:
    case, tensors = _case(vila_root, cid)
    expected = tensors["vlm_last_hidden_states"]
    out = golden_model.encode(case["task_type"], case["prompt"], _media(vila_root, case))
    assert list(out.shape) == case["output"]["shape"] == list(expected.shape)
    assert out.dtype == torch.float16
    delta = _max_abs(out, expected)
    record_property("max_abs_diff", delta)
    record_property("bit_exact", torch.equal(out, expected))
    logger.info("%s: max |delta| = %g (bit-exact: %s)", cid, delta, torch.equal(out, expected))
    assert delta <= OUTPUT_ATOL, f"{cid}: max |delta| {delta}"


@pytest.mark.parametrize("cid", ["p09", "p10", "p11", "p12"])
def test_output_with_native_pillow(vila_root: Path, golden_model: VilaARModel, cid: str) -> None:
    """Installed Pillow's resize: strict tolerance where pixels match bit for bit, looser only where they don't."""
    case, tensors = _case(vila_root, cid)
    native = VilaARModel.load(vila_root / "tiny_vila", resampler="pillow")
    images = list(_images(_media(vila_root, case), case["task"] == "vid_edit"))
    same_pixels = torch.equal(native.pixel_values(images), tensors["pixel_values"])
    out = native.encode(case["task_type"], case["prompt"], _media(vila_root, case))
    delta = _max_abs(out, tensors["vlm_last_hidden_states"])
    logger.info("%s native Pillow: pixels bit-exact %s, max |delta| %g", cid, same_pixels, delta)
    assert delta <= (OUTPUT_ATOL if same_pixels else NATIVE_PILLOW_ATOL)


@pytest.mark.parametrize("cid", ["p01", "p04"])
def test_f4_only_used_frames(vila_root: Path, cid: str) -> None:
    case, tensors = _case(vila_root, cid)
    fast = VilaARModel.load(vila_root / "tiny_vila", decode_all_frames=False)
    out = fast.encode(case["task_type"], case["prompt"], _media(vila_root, case))
    assert _max_abs(out, tensors["vlm_last_hidden_states"]) <= OUTPUT_ATOL


def test_p13_black_fallback_and_fail_mode(vila_root: Path) -> None:
    case, tensors = _case(vila_root, "p13")
    path = _media(vila_root, case)
    black = load_ar_frames(path, on_error="black")
    assert len(black) == 8 and all(im.size == (448, 448) and not np.asarray(im).any() for im in black)
    assert bool((tensors["pixel_values"] == -1).all())
    for only_first in (None, 1):
        with pytest.raises(VideoError) as info:
            load_ar_frames(path, on_error="fail", only_first=only_first)
        assert info.value.reason == errors.DECODE_ERROR and path in str(info.value)
    strict = VilaARModel.load(vila_root / "tiny_vila", on_video_error="fail")
    with pytest.raises(VideoError):
        strict.encode(case["task_type"], case["prompt"], path)
