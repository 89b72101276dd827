"""Prompt preparation exactly as the original step 1 does it (SPEC §Step 1, fixtures t5/).

The original replaces newlines by spaces, filters on the raw length, then (inside its
tokenizer wrapper, ``clean="whitespace"``) cleans the text before tokenising.
"""

from __future__ import annotations

import html

import ftfy
import regex

__all__ = ["clean_text", "prepare_prompt", "passes_prompt_filter"]

_WHITESPACE = regex.compile(r"\s+")


def clean_text(text: str) -> str:
    """ftfy.fix_text -> html.unescape twice -> strip -> collapse whitespace runs to " " -> strip.

    Uses the ``regex`` module as the original does (its ``\\s`` is the Unicode White_Space set,
    which differs from ``re`` for a few control characters).
    """
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE.sub(" ", text).strip()


def prepare_prompt(instruction: str) -> str:
    """The instruction as the original stores it as ``prompt``: newlines replaced by spaces (nothing else)."""
    return instruction.replace("\n", " ")


def passes_prompt_filter(prompt: str, min_len: int = 10) -> bool:
    """The original's filter on the raw (newline-replaced, uncleaned) prompt: non-empty and longer than ``min_len``."""
    return bool(prompt) and len(prompt) > min_len
