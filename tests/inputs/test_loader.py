"""Input lists: edit pairs, captions, JSON Lines, and precise errors for malformed files."""

import json

import pytest

from revise_prep.errors import InputError
from revise_prep.inputs import load_samples, parse_entries

EDIT = {"source_video_path": "a/src.mp4", "target_video_path": "a/tgt.mp4",
        "instruction": "What if the sky\nturned red?", "type": "Existential Reasoning Edits", "other": 1}
CAPTION = {"video": "v/clip.mp4", "conversations": [{"from": "human", "value": "<video>\nDescribe."},
                                                   {"from": "gpt", "value": "A cat jumps on a table."}]}


def test_edit_pair_and_caption(tmp_path):
    path = tmp_path / "in.json"
    path.write_text(json.dumps([EDIT, CAPTION]))
    edit, caption = load_samples(path, video_root="/data")
    assert (edit.source, edit.target, edit.sample_type) == ("a/src.mp4", "a/tgt.mp4", "Existential Reasoning Edits")
    assert edit.prompt == "What if the sky turned red?"
    assert str(edit.source_file) == "/data/a/src.mp4"
    assert caption.is_caption and caption.target is None and caption.instruction == "A cat jumps on a table."
    assert caption.kind == "caption" and edit.kind == "edit"


def test_absolute_paths_ignore_video_root(tmp_path):
    path = tmp_path / "in.json"
    path.write_text(json.dumps([dict(EDIT, source_video_path="/abs/s.mp4")]))
    (sample,) = load_samples(path, video_root="/data")
    assert str(sample.source_file) == "/abs/s.mp4"


def test_json_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(EDIT) + "\n\n" + json.dumps(CAPTION) + "\n")
    samples = load_samples(path)
    assert [s.index for s in samples] == [0, 1]


def test_invalid_json_names_file_and_position(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"source_video_path": "a.mp4",}]')
    with pytest.raises(InputError, match=r"bad\.json: invalid JSON.*line 1"):
        load_samples(path)


def test_invalid_json_line_names_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(EDIT) + "\n{oops\n")
    with pytest.raises(InputError, match=r"bad\.jsonl: line 2"):
        load_samples(path)


def test_not_a_list(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text('{"a": 1}\n{"b": 2}')  # object first -> read as JSON Lines; entries are not samples
    with pytest.raises(InputError, match="entry 0"):
        load_samples(path)
    path.write_text('"just a string"')
    with pytest.raises(InputError, match="expected a JSON list"):
        load_samples(path)


@pytest.mark.parametrize("entry, message", [
    (dict(EDIT, instruction=5), "'instruction' must be a string, got int"),
    ({k: v for k, v in EDIT.items() if k != "target_video_path"}, "missing field 'target_video_path'"),
    (dict(EDIT, type=["x"]), "'type' must be a string"),
    ({"video": "v.mp4", "conversations": [{"from": "human", "value": "hi"}]}, "no turn with"),
    ({"video": "v.mp4", "conversations": "text"}, "must be a list"),
    ([1, 2], "expected an object, got list"),
    ({"foo": 1}, "neither an edit pair"),
])
def test_malformed_entries_report_index_and_reason(tmp_path, entry, message):
    path = tmp_path / "in.json"
    path.write_text(json.dumps([EDIT, entry, EDIT]))
    samples, problems = parse_entries(path)
    assert [s.index for s in samples] == [0, 2]
    assert len(problems) == 1 and problems[0].index == 1 and message in problems[0].message
    with pytest.raises(InputError, match=rf"in\.json: entry 1: .*{message[:12]}"):
        load_samples(path)


def test_unreadable_and_non_utf8(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_samples(tmp_path / "missing.json")
    path = tmp_path / "latin1.json"
    path.write_bytes(b'[{"instruction": "caf\xe9"}]')
    with pytest.raises(InputError, match="not UTF-8"):
        load_samples(path)


def test_lone_surrogate_instruction_is_malformed(tmp_path):
    path = tmp_path / "in.json"
    path.write_text('[{"source_video_path": "a.mp4", "target_video_path": "b.mp4", "instruction": "bad \\udc80 text"}]')
    samples, problems = parse_entries(path)
    assert not samples and "not valid Unicode" in problems[0].message
