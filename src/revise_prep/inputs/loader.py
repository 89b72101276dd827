"""Read the input list (JSON array or JSON Lines) of edit pairs or caption samples.

Edit pair (ReViSE): ``source_video_path``, ``target_video_path``, ``instruction``, optional ``type``.
Caption (Omni-Video): ``video`` and ``conversations``; the caption is the ``gpt`` turn's ``value``.
Other fields are ignored. A file that is not valid JSON fails at once; entries with missing or
mistyped fields are returned as :class:`EntryProblem` so the caller decides to stop or go on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revise_prep.errors import InputError
from revise_prep.inputs.samples import Sample

MALFORMED_ENTRY = "malformed_entry"


@dataclass(frozen=True)
class EntryProblem:
    """An input entry that cannot become a sample: where it is and what is wrong."""

    file: str
    index: int
    message: str
    reason: str = MALFORMED_ENTRY

    def __str__(self) -> str:
        return f"{self.file}: entry {self.index}: {self.message}"


def _read_entries(path: Path) -> list[Any]:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read input list: {err.strerror or err}") from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start})") from err
    stripped = text.lstrip()
    if path.suffix.lower() in (".jsonl", ".ndjson") or (stripped and stripped[0] == "{"):
        entries = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise InputError(f"{path}: line {lineno}: invalid JSON: {err.msg} (column {err.colno})") from err
        return entries
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: invalid JSON: {err.msg} (line {err.lineno}, column {err.colno})") from err
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of samples, got {type(data).__name__}")
    return data


def _text(entry: dict, key: str) -> str:
    value = entry.get(key)
    if value is None:
        raise ValueError(f"missing field {key!r}")
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:  # a lone surrogate such as "\udc80" written by a bad JSON producer
        raise ValueError(f"field {key!r} is not valid Unicode text ({err.reason} at character {err.start})") from None
    return value


def _caption(entry: dict) -> str:
    turns = entry.get("conversations")
    if not isinstance(turns, list):
        raise ValueError("field 'conversations' must be a list of turns")
    for turn in turns:
        if isinstance(turn, dict) and turn.get("from") == "gpt":
            value = turn.get("value")
            if not isinstance(value, str):
                raise ValueError("the 'gpt' turn's 'value' must be a string")
            return value
    raise ValueError("no turn with \"from\": \"gpt\" in 'conversations'")


def parse_entry(entry: Any, index: int, video_root: str) -> Sample:
    """Turn one JSON entry into a :class:`Sample`; raises ValueError saying what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object, got {type(entry).__name__}")
    if "source_video_path" in entry or "target_video_path" in entry:
        sample_type = entry.get("type")
        if sample_type is not None and not isinstance(sample_type, str):
            raise ValueError(f"field 'type' must be a string, got {type(sample_type).__name__}")
        return Sample(
            index=index,
            source=_text(entry, "source_video_path"),
            target=_text(entry, "target_video_path"),
            instruction=_text(entry, "instruction"),
            sample_type=sample_type,
            video_root=video_root,
        )
    if "video" in entry:
        return Sample(index=index, source=_text(entry, "video"), target=None,
                      instruction=_caption(entry), sample_type="caption", video_root=video_root)
    raise ValueError("neither an edit pair (source_video_path, target_video_path, instruction) "
                     "nor a caption sample (video, conversations)")


def parse_entries(path: str | Path, video_root: str | Path = ".") -> tuple[list[Sample], list[EntryProblem]]:
    """Parse every entry; return the good samples and the problems (file, entry index, message)."""
    path = Path(path)
    samples, problems = [], []
    for index, entry in enumerate(_read_entries(path)):
        try:
            samples.append(parse_entry(entry, index, str(video_root)))
        except ValueError as err:
            problems.append(EntryProblem(str(path), index, str(err)))
    return samples, problems


def load_samples(path: str | Path, video_root: str | Path = ".") -> list[Sample]:
    """Parse the input list and fail fast, listing every malformed entry, when any is malformed."""
    samples, problems = parse_entries(path, video_root)
    if problems:
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(f"{len(problems)} malformed entr{'y' if len(problems) == 1 else 'ies'}:\n  {shown}{more}")
    return samples
