"""Output layout (records-only step-1 folders, their sidecar, the migration) and list files that read anywhere."""

from __future__ import annotations

import fcntl
import json
import os

import pytest

from revise_prep.errors import FolderBusyError, InputError
from revise_prep.records.layout import OutputLayout, sidecar_of
from revise_prep.records.reports import read_list_paths, write_list


def test_sidecar_beside_a_records_only_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    layout = OutputLayout.for_output("out", "vae_features.txt", records_only=True).prepare()
    assert layout.records == tmp_path / "out" and layout.meta == tmp_path / "out.revise-prep"
    assert layout.list_file == tmp_path / "out.revise-prep" / "vae_features.txt"
    inline = OutputLayout.for_output("train", "train_list.txt", records_only=False)
    assert inline.meta == inline.records == tmp_path / "train" and inline.failures == tmp_path / "train/failures.jsonl"
    (tmp_path / "afile").write_text("")
    with pytest.raises(InputError, match="not a folder"):
        OutputLayout.for_output("afile", "x.txt", records_only=False).prepare()


def test_migration_of_an_earlier_inline_step1_folder(tmp_path):
    out = tmp_path / "vae"
    out.mkdir()
    (out / "a.pkl").write_bytes(b"record")
    for name in ("vae_features.txt", "failures.jsonl", "summary.json", "config.json"):
        (out / name).write_text(name)
    for folder, file in ((".done", "w1-r0.jsonl"), (".parts", "w1-r0.jsonl"), (".locks", "w1-r0.lock")):
        (out / folder).mkdir()
        (out / folder / file).write_text(json.dumps({"name": "a.pkl"}))
    side = sidecar_of(out)
    side.mkdir()
    (side / ".done").mkdir()
    (side / ".done" / "w1-r0.jsonl").write_text("new\n")  # written by this version already: both kept
    (side / "config.json").write_text("new config")
    OutputLayout.for_output(out, "vae_features.txt", records_only=True).prepare()
    assert os.listdir(out) == ["a.pkl"]  # what the original step 2 lists: the records, nothing else
    assert (side / "vae_features.txt").read_text() == "vae_features.txt"
    assert (side / "config.json").read_text() == "new config"
    assert sorted(os.listdir(side / ".done")) == ["legacy-w1-r0.jsonl", "w1-r0.jsonl"]
    assert (side / ".parts" / "w1-r0.jsonl").exists()


def test_migration_waits_for_an_earlier_version_still_writing(tmp_path):
    out = tmp_path / "vae"
    (out / ".locks").mkdir(parents=True)
    (out / "summary.json").write_text("{}")
    fd = os.open(out / ".locks" / "w1-r0.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(FolderBusyError, match="earlier version"):
            OutputLayout.for_output(out, "vae_features.txt", records_only=True).prepare()
        assert (out / "summary.json").exists()
    finally:
        os.close(fd)


def test_list_files_read_from_any_working_folder(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "recs").mkdir(parents=True)
    (data / "recs" / "a.pkl").write_bytes(b"a")
    monkeypatch.chdir(data)
    (data / "lists").mkdir()
    write_list("lists/abs.txt", ["recs/a.pkl"])
    write_list("lists/rel.txt", ["recs/a.pkl"], relative=True)
    assert (data / "lists/abs.txt").read_text() == f"{data / 'recs/a.pkl'}\n"
    assert (data / "lists/rel.txt").read_text() == "../recs/a.pkl\n"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "recs").mkdir(parents=True)
    (elsewhere / "recs" / "a.pkl").write_bytes(b"a decoy beside the reader's working folder")
    monkeypatch.chdir(elsewhere)
    for name in ("abs.txt", "rel.txt"):
        [path] = read_list_paths(data / "lists" / name)
        assert path.read_bytes() == b"a", name
    (data / "lists" / "old.txt").write_text("recs/a.pkl\n")  # an earlier version: relative to where it ran
    monkeypatch.chdir(data)
    assert read_list_paths(data / "lists" / "old.txt")[0].read_bytes() == b"a"
    with pytest.raises(ValueError, match="line break"):
        write_list(data / "bad.txt", [str(data / "x\ny.pkl")])
