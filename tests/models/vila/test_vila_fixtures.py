"""Golden cases produced by the original ReViSE code on ``vila/tiny_vila`` (see vila/README.md there).

Default path (Pillow-10.4-compatible resize): prompt, ids, frame indices and pixels are bit-exact; the fp16 image
features and hidden states are within ``testing.exact.BOUNDS`` spacings, since another CPU's fp16 kernels may
round differently (bit-exact on the AVX-512 CPU that made them). The native Pillow resize is checked too:
bit-exact pixels must give the same bound, differing pixels (Pillow 13 vs 10.4, e.g. p12's portrait) get the
looser ``vila.hidden_states_native_pillow``.
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
from revise_prep.testing.exact import assert_exact, assert_within

logger = logging.getLogger(__name__)

CASE_IDS = [f"p{i:02d}" for i in range(1, 14)]


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


@pytest.mark.parametrize("cid", CASE_IDS)
def test_prompt_and_ids(golden_model: VilaARModel, vila_root: Path, cid: str) -> None:
    case, tensors = _case(vila_root, cid)
    assert_exact("vila.prompt", golden_model.build_prompt(case["task_type"], case["prompt"]), case["template_prompt"],
                 case=cid)
    ids = golden_model.input_ids(case["task_type"], case["prompt"])
    assert_exact("vila.input_ids", ids, case["input_ids"], case=cid)
    assert_exact("vila.input_ids", ids, tensors["input_ids"][0].tolist(), case=cid)
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
    assert_exact("vila.frame_count", count_frames(path), video["num_frames"], case=cid)
    assert_exact("vila.frame_indices", ar_frame_indices(video["num_frames"]), video["frame_indices"], case=cid)


@pytest.mark.parametrize("cid", [c for c in CASE_IDS if c not in ("p07", "p08")])
def test_pixel_values_bit_exact(golden_model: VilaARModel, vila_root: Path, cid: str) -> None:
    case, tensors = _case(vila_root, cid)
    images = _images(_media(vila_root, case), case["task"] == "vid_edit")
    pixels = golden_model.pixel_values(list(images))
    assert pixels.dtype == torch.float16
    assert_exact("vila.pixel_values", pixels, tensors["pixel_values"], case=cid)


@pytest.mark.parametrize("cid", [c for c in CASE_IDS if c not in ("p07", "p08")])
def test_tower_projector_splice(golden_model: VilaARModel, vila_root: Path, cid: str) -> None:
    case, tensors = _case(vila_root, cid)
    feats = golden_model.image_features(tensors["pixel_values"])
    assert_within("vila.image_features", feats, tensors["image_features"], case=cid)
    spliced = golden_model.splice(case["input_ids"], tensors["image_features"])  # a copy: bit for bit
    assert_exact("vila.inputs_embeds", spliced, tensors["llm_inputs_embeds"], case=cid)


@pytest.mark.parametrize("cid", CASE_IDS)
def test_output(golden_model: VilaARModel, vila_root: Path, cid: str, record_property) -> None:
    case, tensors = _case(vila_root, cid)
    expected = tensors["vlm_last_hidden_states"]
    out = golden_model.encode(case["task_type"], case["prompt"], _media(vila_root, case))
    assert_exact("vila.shape", list(out.shape), case["output"]["shape"], case=cid)
    assert out.dtype == torch.float16
    record_property("bit_exact", torch.equal(out, expected))
    record_property("spacings", assert_within("vila.hidden_states", out, expected, case=cid))


@pytest.mark.parametrize("cid", ["p09", "p10", "p11", "p12"])
def test_output_with_native_pillow(vila_root: Path, golden_model: VilaARModel, cid: str) -> None:
    """Installed Pillow's resize: strict tolerance where pixels match bit for bit, looser only where they don't."""
    case, tensors = _case(vila_root, cid)
    native = VilaARModel.load(vila_root / "tiny_vila", resampler="pillow")
    images = list(_images(_media(vila_root, case), case["task"] == "vid_edit"))
    same_pixels = torch.equal(native.pixel_values(images), tensors["pixel_values"])
    out = native.encode(case["task_type"], case["prompt"], _media(vila_root, case))
    logger.info("%s native Pillow: pixels bit-exact %s", cid, same_pixels)
    what = "vila.hidden_states" if same_pixels else "vila.hidden_states_native_pillow"
    assert_within(what, out, tensors["vlm_last_hidden_states"], case=f"{cid} native Pillow")


@pytest.mark.parametrize("cid", ["p01", "p04"])
def test_f4_only_used_frames(vila_root: Path, cid: str) -> None:
    case, tensors = _case(vila_root, cid)
    fast = VilaARModel.load(vila_root / "tiny_vila", decode_all_frames=False)
    out = fast.encode(case["task_type"], case["prompt"], _media(vila_root, case))
    assert_within("vila.hidden_states", out, tensors["vlm_last_hidden_states"], case=f"{cid} only used frames")


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
