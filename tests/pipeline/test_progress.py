"""Logs sized for 100k samples: progress lines off a terminal, notices summarised after the first few."""

from __future__ import annotations

import io
import logging

from revise_prep.pipeline.progress import Notices, Progress, progress_line


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_off_a_terminal_is_a_line_every_interval(caplog):
    clock, stream = Clock(), io.StringIO()  # StringIO is not a tty, like stderr redirected by SLURM
    caplog.set_level(logging.INFO)
    bar = Progress(1000, "vae", interval=60, stream=stream, clock=clock)
    for _ in range(1000):
        clock.now += 0.5  # 2 samples/s: 500 s in all
        bar.update()
    bar.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "revise_prep.progress"]
    assert len(lines) == 500 // 60 + 1 and stream.getvalue() == ""  # nothing written as a bar
    assert lines[0].startswith("vae: 120/1000 samples (12.0%), 2 samples/s") and lines[0].endswith("ETA 7m20s")
    assert lines[-1] == "vae: 1000/1000 samples (100.0%), 8m20s elapsed"  # no rate: the summary has the one


def test_the_last_progress_line_is_written_once(caplog):
    """A run whose last sample lands on the interval logs its final line once, not a progress line and then it."""
    clock = Clock()
    caplog.set_level(logging.INFO)
    bar = Progress(120, "run", interval=60, stream=io.StringIO(), clock=clock)
    for _ in range(120):
        clock.now += 0.5
        bar.update()
    bar.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "revise_prep.progress"]
    assert lines == ["run: 120/120 samples (100.0%), 1m00s elapsed"]


def test_progress_disabled_writes_nothing(caplog):
    caplog.set_level(logging.INFO)
    bar = Progress(10, "ar", enabled=False, interval=0, stream=io.StringIO())
    for _ in range(10):
        bar.update()
    bar.close()
    assert not caplog.records


def test_progress_line_long_runs():
    assert progress_line("run", 1200, 100_000, 3600.0) == \
        "run: 1200/100000 samples (1.2%), 0.333 samples/s, 1h00m elapsed, ETA 3d10h"


def test_notices_show_the_first_few_then_a_count(caplog):
    caplog.set_level(logging.INFO)
    notices = Notices(logging.getLogger("t"), shown=3)
    for i in range(100):
        notices("renamed", "sample %d renamed", i, where="notes.jsonl")
    notices("decode_error", "one bad video")
    notices.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["sample 0 renamed", "sample 1 renamed", "sample 2 renamed", "one bad video",
                     "renamed: 97 more like this not shown (100 in all; every one is in notes.jsonl)"]


def test_rule_skips_an_earlier_run_recorded_are_counted_not_logged(caplog, tmp_path):
    from revise_prep.errors import SampleError
    from revise_prep.pipeline.engines.base import earlier_skips

    (tmp_path / "failures.jsonl").write_text(
        '{"index": 0, "name": "a", "status": "skipped", "reason": "short_prompt"}\n'
        '{"index": 1, "name": "b", "status": "failed", "reason": "decode_error"}\n{"torn": ')
    caplog.set_level(logging.INFO)
    notices = Notices(logging.getLogger("t"))
    notices.known = earlier_skips(tmp_path)
    assert notices.known == {"a": "short_prompt"}  # failures are logged again: they may be transient
    notices.sample("a", SampleError("short_prompt", "a: too short", skip=True), "%s", "a skipped")
    notices.sample("b", SampleError("decode_error", "b: bad"), "%s", "b failed")
    notices.sample("c", SampleError("short_prompt", "c: too short", skip=True), "%s", "c skipped")  # new
    notices.sample("a", SampleError("orientation_mismatch", "a: portrait", skip=True), "%s", "a turned")  # changed
    notices.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "b failed", "c skipped", "a turned",
        "1 sample(s) skipped again for the reason an earlier run recorded (short_prompt 1; every one is in "
        "failures.jsonl)"]
