"""The test-built tiny checkpoint: builds fast, loads, encodes every task with independently computed lengths."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from revise_prep.models.vila import VilaARModel, read_checkpoint
from revise_prep.testing.tiny_vila import make_tiny_vila

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
            "[PAD]"]
SYSTEM = ("You are a helpful language and vision assistant. You are able to understand the visual content that the "
          "user provides, and assist the user with a variety of tasks using natural language.")
PREFIX = {
    "vid_edit": "<image>\n<video>\n", "vid_gen": "Generate a video about:\n",
    "i2v_gen": "<image>\nGenerate a video from the reference image with the following prompt:\n",
    "img_gen": "Generate an image about:\n", "img_edit": "<image>\n",
}
ANSWER = {"vid_edit": "[GEN_VID]", "vid_gen": "[GEN_VID]", "i2v_gen": "[GEN_VID]", "img_gen": "[GEN_IMG]",
          "img_edit": "[GEN_IMG]"}
TOKENS_PER_IMAGE = 16  # 98 / 14 = 7x7 grid, padded to 8x8, 2x2 merge -> 4x4


def count_tokens(text: str) -> int:
    """The tiny tokenizer has no merges: one token per special token, one per UTF-8 byte otherwise."""
    parts = re.split("(" + "|".join(re.escape(s) for s in SPECIALS) + ")", text)
    return sum(1 if p in SPECIALS else len(p.encode("utf-8")) for p in parts)


def expected_length(task: str, prompt: str) -> int:
    template = (f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|>"
                f"<|start_header_id|>user<|end_header_id|>\n\n{PREFIX[task]}{prompt}<|eot_id|>"
                f"<|start_header_id|>assistant<|end_header_id|>\n\n{ANSWER[task]}<|end_of_text|>")
    chunks = template.split("<image>")
    images = len(chunks) - 1
    num_ids = 1 + sum(count_tokens(c) for c in chunks) + images  # BOS + chunks + one -200 per cut
    pads = prompt.count("[PAD]") if images else 0  # deleted on the media path only
    return num_ids - images - pads + TOKENS_PER_IMAGE * images


def _frames(seed: int, count: int = 8) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40 + i, 70, 3), dtype=np.uint8)) for i in range(count)]


def test_build_is_quick_and_small(tmp_path: Path) -> None:
    start = time.perf_counter()
    root = make_tiny_vila(tmp_path / "ckpt")
    assert time.perf_counter() - start < 2.0
    total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    assert total < 5_000_000
    for rel in ("config.json", "llm/config.json", "llm/tokenizer.json", "llm/model.safetensors",
                "vision_tower/config.json", "vision_tower/preprocessor_config.json",
                "vision_tower/model.safetensors", "mm_projector/config.json", "mm_projector/model.safetensors"):
        assert (root / rel).is_file(), rel


def test_build_is_deterministic(tmp_path: Path) -> None:
    a, b = make_tiny_vila(tmp_path / "a", seed=5), make_tiny_vila(tmp_path / "b", seed=5)
    for rel in ("llm/model.safetensors", "vision_tower/model.safetensors", "mm_projector/model.safetensors"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_mpt_folder_name_loads(tiny_model: VilaARModel, tiny_vila_dir: Path) -> None:
    assert "mpt" in tiny_vila_dir.name
    assert tiny_model.checkpoint.root == tiny_vila_dir
    assert not tiny_model.llm.training and not tiny_model.vision_tower.training
    assert tiny_model.llm.config._attn_implementation == "sdpa"
    assert tiny_model.image_tokens_per_image == TOKENS_PER_IMAGE
    assert str(tiny_vila_dir) in tiny_model.identifier


@pytest.mark.parametrize("task", sorted(PREFIX))
@pytest.mark.parametrize("prompt", ["A dog runs.", "naïve café 🌅 [PAD] x"])
def test_encode_every_task(tiny_model: VilaARModel, task: str, prompt: str) -> None:
    media = {"vid_edit": _frames(0), "i2v_gen": _frames(1, 1)[0], "img_edit": _frames(2, 1)[0]}.get(task)
    out = tiny_model.encode(task, prompt, media)
    assert out.shape == (1, expected_length(task, prompt), 64)
    assert out.dtype == torch.float16 and out.device.type == "cpu"
    assert torch.isfinite(out).all()


def test_only_first_frame_matters(tiny_model: VilaARModel) -> None:
    frames = _frames(3)
    base = tiny_model.encode("vid_edit", "make it snow", frames)
    others = frames[:1] + _frames(4, 7)
    assert torch.equal(tiny_model.encode("vid_edit", "make it snow", others), base)
    first = _frames(5, 1) + frames[1:]
    assert not torch.equal(tiny_model.encode("vid_edit", "make it snow", first), base)


def test_literal_image_pulls_in_second_frame(tiny_model: VilaARModel) -> None:
    frames = _frames(6)
    out = tiny_model.encode("vid_edit", "like <image> please", frames)
    assert out.shape[1] == expected_length("vid_edit", "like <image> please")
    changed = frames[:1] + _frames(7, 1) + frames[2:]
    assert not torch.equal(tiny_model.encode("vid_edit", "like <image> please", changed), out)
    with pytest.raises(ValueError, match="placeholders"):
        tiny_model.encode("img_edit", "like <image> please", frames[0])
    with pytest.raises(ValueError, match="literal <image>"):
        tiny_model.encode("vid_gen", "like <image> please")


def test_video_path_and_f4_mode(tiny_vila_dir: Path, tiny_model: VilaARModel, write_video, tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", 30)
    full = tiny_model.encode("v2v", "edit", video)
    fast = VilaARModel.load(tiny_vila_dir, decode_all_frames=False).encode("vid_edit", "edit", os.fspath(video))
    torch.testing.assert_close(fast, full, rtol=0, atol=2e-3)  # F4: bit-identical on CPU in practice


def test_truncation_media_path_only(tiny_vila_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "short"
    shutil.copytree(tiny_vila_dir, root)
    cfg_path = root / "llm" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_model_max_length"] = 300
    cfg_path.write_text(json.dumps(cfg))
    model = VilaARModel.load(root)
    prompt = "word " * 100
    assert model.encode("img_edit", prompt, _frames(8, 1)[0]).shape[1] == 300
    assert model.encode("img_gen", prompt).shape[1] == expected_length("img_gen", prompt) > 300


def test_text_path_pad_is_a_masked_key(tiny_model: VilaARModel) -> None:
    """``[PAD]`` stays in place on the text path (own position and row) but is masked: its embedding is unseen."""
    with_pad = tiny_model.encode("t2i", "red[PAD] bike")
    ids = tiny_model.input_ids("t2i", "red[PAD] bike")
    pos = ids.index(tiny_model.pad_id)
    assert with_pad.shape[1] == len(ids)
    other = torch.tensor([ids[:pos] + [ord("x")] + ids[pos + 1:]])
    mask = torch.ones_like(other)
    mask[0, pos] = 0
    with torch.inference_mode():
        ref = tiny_model.llm.model(input_ids=other, attention_mask=mask).last_hidden_state
    keep = [i for i in range(len(ids)) if i != pos]
    assert torch.equal(with_pad[0, keep], ref[0, keep])


def test_linear_projector_checkpoint(tmp_path: Path) -> None:
    model = VilaARModel.load(make_tiny_vila(tmp_path / "lin", projector="linear"))
    assert model.image_tokens_per_image == 49
    out = model.encode("img_edit", "x", _frames(9, 1)[0])
    assert out.shape == (1, expected_length("img_edit", "x") - TOKENS_PER_IMAGE + 49, 64)


def test_non_vila_dirs_raise(tmp_path: Path, tiny_vila_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"config\.json is missing") as info:
        read_checkpoint(empty)
    assert str(empty) in str(info.value)

    llama = tmp_path / "llama"
    shutil.copytree(tiny_vila_dir / "llm", llama)
    with pytest.raises(ValueError, match="llava") as info:
        read_checkpoint(llama)
    assert str(llama) in str(info.value)

    no_tower = tmp_path / "no_tower"
    shutil.copytree(tiny_vila_dir, no_tower)
    shutil.rmtree(no_tower / "vision_tower")
    with pytest.raises(ValueError, match="vision_tower") as info:
        VilaARModel.load(no_tower)
    assert str(no_tower) in str(info.value)

    with pytest.raises(ValueError, match="not found"):
        read_checkpoint(tmp_path / "does" / "not" / "exist")
