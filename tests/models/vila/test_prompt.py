"""Prompt building and ``tokenizer_image_token`` (tasks, aliases, llama_3 template, double BOS, -200)."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from revise_prep.models.vila import IMAGE_TOKEN_INDEX, build_prompt, resolve_task, tokenizer_image_token
from revise_prep.models.vila.prompt import image_prefix

SYS = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and vision "
    "assistant. You are able to understand the visual content that the user provides, and assist the user with "
    "a variety of tasks using natural language."
)
U = "<|start_header_id|>user<|end_header_id|>\n\n"
A = "<|start_header_id|>assistant<|end_header_id|>\n\n"

EXPECTED_QS = {
    "vid_edit": ("<image>\n<video>\nP", "[GEN_VID]"),
    "vid_gen": ("Generate a video about:\nP", "[GEN_VID]"),
    "i2v_gen": ("<image>\nGenerate a video from the reference image with the following prompt:\nP", "[GEN_VID]"),
    "img_gen": ("Generate an image about:\nP", "[GEN_IMG]"),
    "img_edit": ("<image>\nP", "[GEN_IMG]"),
}


@pytest.mark.parametrize("task", sorted(EXPECTED_QS))
def test_template_per_task(task: str) -> None:
    qs, answer = EXPECTED_QS[task]
    num_images = 1 if qs.startswith("<image>") else 0
    assert build_prompt(task, "P", num_images) == f"{SYS}<|eot_id|>{U}{qs}<|eot_id|>{A}{answer}<|end_of_text|>"


@pytest.mark.parametrize(
    ("task_type", "task"),
    [("t2v", "vid_gen"), ("v2v", "vid_edit"), ("t2i", "img_gen"), ("i2i", "img_edit"), ("i2v", "i2v_gen"),
     ("my_t2v_task", "vid_gen"), ("i2v_gen", "i2v_gen"), ("vid_edit", "vid_edit"), ("img_gen", "img_gen")],
)
def test_aliases_are_substring_tests(task_type: str, task: str) -> None:
    assert resolve_task(task_type).name == task


def test_unknown_task_raises() -> None:
    with pytest.raises(ValueError, match="unknown task type"):
        resolve_task("video_edit")


def test_im_start_end_wraps_placeholder() -> None:
    assert image_prefix(1, mm_use_im_start_end=True) == "<im_start><image><im_end>\n"
    assert "<im_start><image><im_end>\n<video>\nP" in build_prompt("vid_edit", "P", 1, mm_use_im_start_end=True)


@pytest.mark.parametrize("task", sorted(EXPECTED_QS))
def test_ids_double_bos_and_placeholder_count(tiny_model, task: str) -> None:
    tok = tiny_model.tokenizer
    ids = tiny_model.input_ids(task, "a prompt")
    assert ids[:3] == [tok.bos_token_id, tok.bos_token_id, tok.convert_tokens_to_ids("<|start_header_id|>")]
    assert ids.count(IMAGE_TOKEN_INDEX) == (1 if resolve_task(task).media else 0)
    assert ids[-1] == tok.eos_token_id  # ... [GEN_*]<|end_of_text|>, no trailing newline


def test_literal_image_in_prompt_adds_a_placeholder(tiny_model) -> None:
    ids = tiny_model.input_ids("vid_edit", "look at <image> here")
    assert ids.count(IMAGE_TOKEN_INDEX) == 2


def test_chunks_tokenised_separately(tiny_model) -> None:
    """Each chunk gets its own BOS which is dropped: ids = [bos] + chunk0[1:] + [-200] + chunk1[1:]."""
    tok = tiny_model.tokenizer
    text = "<|begin_of_text|>ab<image>cd"
    c0, c1 = tok("<|begin_of_text|>ab").input_ids, tok("cd").input_ids
    assert tokenizer_image_token(text, tok) == [c0[0]] + c0[1:] + [IMAGE_TOKEN_INDEX] + c1[1:]
    assert tokenizer_image_token(text, tok)[:2] == [tok.bos_token_id, tok.bos_token_id]


def test_literal_behaviour_without_bos_tokenizer(tiny_vila_dir) -> None:
    """Upstream quirk kept: with a no-BOS tokenizer, a literal leading BOS makes every later chunk lose a token."""
    raw = Tokenizer.from_file(str(tiny_vila_dir / "llm" / "tokenizer.json"))
    raw.post_processor = None
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>")
    bos = tok.bos_token_id
    a, b, c, d = (tok(ch).input_ids[0] for ch in "abcd")
    assert tokenizer_image_token("<|begin_of_text|>ab<image>cd", tok) == [bos, a, b, IMAGE_TOKEN_INDEX, d]
    assert tokenizer_image_token("ab<image>cd", tok) == [a, b, IMAGE_TOKEN_INDEX, c, d]
