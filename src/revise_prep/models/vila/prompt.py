"""Task prompts of the ReViSE AR model: task table, alias resolution, llama_3 template, ``tokenizer_image_token``.

Reproduces upstream ``VilaARVideoModel.general_emb`` / ``ar_feature_extract_edit.py`` text handling literally,
including the double BOS and the answer tail (see VILA_SPEC sections 3 and 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

IMAGE_TOKEN_INDEX = -200
IMAGE_PLACEHOLDER = "<image>"
IM_START = "<im_start>"
IM_END = "<im_end>"
IM_PATCH = "<im_patch>"

MediaKind = Literal["video", "image"]


@dataclass(frozen=True)
class TaskSpec:
    """One task row: text prefix before the user prompt, the answer tag, and which media it takes."""

    name: str
    prefix: str
    answer: str
    media: MediaKind | None


TASKS: dict[str, TaskSpec] = {
    "vid_gen": TaskSpec("vid_gen", "Generate a video about:\n", "[GEN_VID]", None),
    "vid_edit": TaskSpec("vid_edit", "<video>\n", "[GEN_VID]", "video"),
    "i2v_gen": TaskSpec(
        "i2v_gen", "Generate a video from the reference image with the following prompt:\n", "[GEN_VID]", "image"
    ),
    "img_gen": TaskSpec("img_gen", "Generate an image about:\n", "[GEN_IMG]", None),
    "img_edit": TaskSpec("img_edit", "", "[GEN_IMG]", "image"),
}

# Upstream tests substrings in this order (V:112-121).
_ALIASES: tuple[tuple[str, str], ...] = (
    ("t2v", "vid_gen"),
    ("v2v", "vid_edit"),
    ("t2i", "img_gen"),
    ("i2i", "img_edit"),
    ("i2v", "i2v_gen"),
)

# llama_3 conversation template (L/conversation.py:451-462).
LLAMA3_SYSTEM = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language."
)
LLAMA3_USER = "<|start_header_id|>user<|end_header_id|>\n\n"
LLAMA3_ASSISTANT = "<|start_header_id|>assistant<|end_header_id|>\n\n"
LLAMA3_SEP = "<|eot_id|>"
LLAMA3_SEP2 = "<|end_of_text|>"


def resolve_task(task_type: str) -> TaskSpec:
    """Canonical task for ``task_type``: an exact name, else upstream's substring aliases (t2v, v2v, t2i, i2i, i2v)."""
    if task_type in TASKS:
        return TASKS[task_type]
    for needle, name in _ALIASES:
        if needle in task_type:
            return TASKS[name]
    raise ValueError(f"unknown task type {task_type!r}; expected one of {sorted(TASKS)} or an alias "
                     f"containing {[a for a, _ in _ALIASES]}")


def image_prefix(num_images: int, *, mm_use_im_start_end: bool = False) -> str:
    """The placeholder lines put before the question: ``"<image>\\n"`` per image (wrapped when im_start_end)."""
    token = f"{IM_START}{IMAGE_PLACEHOLDER}{IM_END}" if mm_use_im_start_end else IMAGE_PLACEHOLDER
    return f"{token}\n" * num_images


def build_prompt(task: str, prompt: str, num_images: int, *, mm_use_im_start_end: bool = False) -> str:
    """The full llama_3 prompt string: ``SYS<|eot_id|>U{qs}<|eot_id|>A{answer}<|end_of_text|>``.

    ``qs = image_prefix(num_images) + prefix + prompt``; upstream uses ``num_images=1`` whenever there is media.
    """
    spec = resolve_task(task)
    qs = image_prefix(num_images, mm_use_im_start_end=mm_use_im_start_end) + spec.prefix + prompt
    return f"{LLAMA3_SYSTEM}{LLAMA3_SEP}{LLAMA3_USER}{qs}{LLAMA3_SEP}{LLAMA3_ASSISTANT}{spec.answer}{LLAMA3_SEP2}"


def tokenizer_image_token(prompt: str, tokenizer: Any, image_token_index: int = IMAGE_TOKEN_INDEX) -> list[int]:
    """Upstream ``tokenizer_image_token`` (L/mm_utils.py:335-360), literally.

    Each ``<image>``-separated chunk is tokenised on its own (with the tokenizer's BOS); when chunk 0 starts with
    BOS the output starts with one BOS and every chunk loses its first token, so a BOS-prepending tokenizer
    yields ``[bos, bos, ...]`` (the template's literal ``<|begin_of_text|>``) and one ``image_token_index`` per cut.
    """
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split(IMAGE_PLACEHOLDER)]
    input_ids: list[int] = []
    offset = 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        input_ids.append(chunks[0][0])
    separator = [image_token_index] * (offset + 1)
    interleaved = [part for chunk in chunks for part in (chunk, separator)][:-1]
    for part in interleaved:
        input_ids.extend(part[offset:])
    return input_ids
