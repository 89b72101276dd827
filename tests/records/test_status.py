"""records/status.py on its own: journals read while being written, locks held or left behind."""

from __future__ import annotations

import json

from revise_prep.pipeline.inflight import InflightJournal
from revise_prep.pipeline.locks import ShareLock
from revise_prep.records.status import earlier_deaths, folder_status, lock_holder, read_sections


def test_sections_of_a_journal_being_written(tmp_path):
    journal = InflightJournal(tmp_path, 0, 1)  # the writer's own API: the format stays one
    journal.plan(total=5, todo=4, resumed=1, prefailed={})
    for name in ("a", "b", "c"):
        journal.start(name)
    journal.end("a")
    journal.end("b", "skipped", "short_prompt")
    journal._file.write('{"end": "c", "sta')  # a torn last line, as a kill mid-append leaves it
    journal._file.flush()
    [run] = read_sections(journal.path)
    assert not run.stopped and run.ended == 2 and run.plan["todo"] == 4 and run.open == ["c"]
    assert run.outcomes == {"skipped": {"short_prompt": 1}} and run.pid is not None
    journal._file.close()  # killed: no stop
    assert earlier_deaths(journal.path) == 0
    second = InflightJournal(tmp_path, 0, 1)  # compacts the first run into its carried counts
    second.close()
    [last] = read_sections(journal.path)
    assert last.stopped and last.ended == 0 and earlier_deaths(journal.path) == 1


def test_lock_holder_held_and_released(tmp_path):
    path = tmp_path / ".locks" / "w1-r0.lock"
    assert lock_holder(path) is None  # no file
    with ShareLock(tmp_path, 0, 1):
        holder = lock_holder(path)
        assert holder is not None and holder.startswith("pid ") and " on " in holder
    assert path.exists() and lock_holder(path) is None  # left behind, held by nobody


def test_died_and_finished_from_files(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"step": "ar", "settings": {"engine": {"name": "ray"}},
                                                      "world_size": 1}))
    journal = InflightJournal(tmp_path, 0, 1)
    journal.plan(total=3, todo=3, resumed=0, prefailed={"skipped": {"duplicate_sample": 1}})
    journal.start("x")
    journal._file.close()  # no stop: the run died on "x"
    st = folder_status(tmp_path)
    assert st["state"] == "died" and st["engine"] == "ray" and st["ranks"][0]["in_flight"] == ["x"]
    assert st["counts"]["skipped"] == 1 and st["reasons"] == {"skipped": {"duplicate_sample": 1}}
    assert st["files"]["list_file"]["path"].endswith("ar_features.txt")
