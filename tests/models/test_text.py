"""Prompt preparation against the golden t5/config.json records and the original filter rule."""

from __future__ import annotations

import json

import pytest

from revise_prep.models.text import clean_text, passes_prompt_filter, prepare_prompt


@pytest.fixture(scope="module")
def prompts(reference):
    records = json.loads((reference / "t5" / "config.json").read_text(encoding="utf-8"))["prompts"]
    assert len(records) >= 10
    return records


def test_prepare_prompt_matches_fixture(prompts):
    for rec in prompts:
        assert prepare_prompt(rec["prompt"]) == rec["prompt_after_newline_replacement"], rec["key"]


def test_clean_text_matches_fixture(prompts):
    for rec in prompts:
        cleaned = clean_text(rec["prompt_after_newline_replacement"])
        assert cleaned == rec["cleaned_text"], rec["key"]
        assert len(cleaned) == rec["cleaned_len"], rec["key"]


def test_filter_matches_fixture(prompts):
    for rec in prompts:
        prompt = prepare_prompt(rec["prompt"])
        assert passes_prompt_filter(prompt) is rec["pipeline_len_filter_passes"], rec["key"]


def test_filter_uses_raw_length_not_cleaned():
    raw = prepare_prompt("   hi   there   \n\n  ")  # README §6: raw length 20, cleans to "hi there"
    assert clean_text(raw) == "hi there"
    assert passes_prompt_filter(raw)


@pytest.mark.parametrize(
    ("prompt", "min_len", "expected"),
    [("", 10, False), ("0123456789", 10, False), ("0123456789a", 10, True), ("abc", 2, True), ("ab", 2, False)],
)
def test_filter_threshold(prompt, min_len, expected):
    assert passes_prompt_filter(prompt, min_len=min_len) is expected


def test_newlines_only_replacement():
    assert prepare_prompt("a\nb\r\nc\td") == "a b\r c\td"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\x0bb", "ab"),  # ftfy deletes a vertical tab without a space (README §6)
        ("&amp;amp;amp;", "&"),  # no "<": ftfy unescapes, then two more rounds
        ("x < y &amp;amp;amp;", "x < y &amp;"),  # with "<": only the two html.unescape rounds
        ("caf\u00c3\u00a9", "caf\u00e9"),  # mojibake repaired
        ("  a \u00a0\u3000 b  ", "a b"),  # no-break and ideographic spaces collapse
    ],
)
def test_clean_text_quirks(text, expected):
    assert clean_text(text) == expected
