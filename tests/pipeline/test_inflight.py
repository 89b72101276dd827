"""The in-flight journal: a sample in flight when two runs died is quarantined; a clean end forgets it."""

from __future__ import annotations

from revise_prep.pipeline.inflight import InflightJournal, inflight_path


def died(j: InflightJournal) -> None:
    """What a SIGKILL leaves: the lines written so far (flushed), no ``stop``."""
    j._file.close()


def test_two_deaths_quarantine_and_a_clean_end_resets(tmp_path):
    j = InflightJournal(tmp_path, 0, 1)
    j.start("a"); j.end("a"); j.start("b")
    died(j)
    j = InflightJournal(tmp_path, 0, 1)
    assert dict(j.deaths) == {"b": 1} and j.runs_died == 1 and not j.quarantined("b")
    j.start("b"); j.start("c")
    died(j)
    j = InflightJournal(tmp_path, 0, 1)
    assert dict(j.deaths) == {"b": 2, "c": 1} and j.runs_died == 2
    assert j.quarantined("b") == 2 and not j.quarantined("c")
    j.start("c"); j.end("c"); j.start("d")
    j.close()  # ended without dying (Ctrl-C, a full disk): "d" is not blamed
    j = InflightJournal(tmp_path, 0, 1)
    assert dict(j.deaths) == {"b": 2}
    j.start("b"); j.end("b"); j.close()  # --retry-crashed and it went through
    assert not InflightJournal(tmp_path, 0, 1).deaths


def test_torn_line_and_other_world_sizes_count(tmp_path):
    j = InflightJournal(tmp_path, 1, 2)
    j.start("x")
    died(j)
    with open(inflight_path(tmp_path, 1, 2), "a") as f:
        f.write('{"start": "y"')  # a kill mid-append
    j = InflightJournal(tmp_path, 0, 1)  # a later run with another world size reads every rank's file
    assert dict(j.deaths) == {"x": 1}


def test_a_clean_end_in_our_file_overrides_another_world_size(tmp_path):
    for _ in range(2):
        j = InflightJournal(tmp_path, 1, 2)
        j.start("x")
        died(j)
    j = InflightJournal(tmp_path, 0, 1)
    assert j.quarantined("x") == 2
    j.start("x"); j.end("x"); j.close()  # --retry-crashed, and it went through
    assert not InflightJournal(tmp_path, 0, 1).deaths
    assert not InflightJournal(tmp_path, 0, 1).deaths  # still after our file was compacted twice


def test_attempt_markers_count_the_deaths_of_other_processes(tmp_path):
    """What the Ray engine keeps: a marker per attempt; one left behind is a holder that died. At the end the
    driver's journal gets the deaths of samples that did not end normally, and a later run quarantines them."""
    from revise_prep.pipeline.inflight import MAX_DEATHS, Attempts

    dead = []  # holders that die inside the block: never left (kept referenced, so never closed either)

    def die_holding(attempts, name):
        dead.append(attempts.hold(name, "encode"))
        dead[-1].__enter__()

    stale = Attempts(tmp_path, "ray-1-1").create()
    die_holding(stale, "old")  # a driver that died with this in flight
    attempts = Attempts(tmp_path, "ray-2-2").create()
    assert not stale.folder.exists()  # removed, blaming nothing
    with attempts.hold("a", "decode") as died:
        assert died == 0
    for _ in range(MAX_DEATHS):  # "b": its holder is killed inside the block, twice (the marker stays)
        die_holding(attempts, "b")
    with attempts.hold("b", "encode") as died:
        assert died == MAX_DEATHS
    die_holding(attempts, "c")  # died once, then done by a later attempt
    with attempts.hold("c", "decode") as died:
        assert died == 1
    die_holding(attempts, "d")  # still held when the run stopped: not known to have died
    assert attempts.deaths({"a", "b", "c"}) == {"b": MAX_DEATHS, "c": 1}

    j = InflightJournal(tmp_path, 0, 1)
    j.end("c")  # "c" ended normally: forgiven
    j.died({"b": MAX_DEATHS})
    j.close()
    attempts.remove()
    j = InflightJournal(tmp_path, 0, 2)  # any later run, any world size
    assert j.quarantined("b") == MAX_DEATHS and not j.deaths.get("c") and not j.deaths.get("d")
