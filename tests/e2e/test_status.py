"""``revise-prep status``: a live run (a process of its own, frozen mid-sample), the same run after a SIGKILL,
the resumed run finished, and a two-rank run with one rank done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from revise_prep.records.layout import sidecar_of
from revise_prep.records.status import folder_status, read_sections
from revise_prep.testing.videos import make_video

from .conftest import cli
from .procs import freeze

N = 8


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("status")
    entries = []
    for i in range(N):
        for role in ("src", "tgt"):
            make_video(root / f"s{i}_{role}.mp4", frames=8, width=48, height=32, seed=2 * i + len(role))
        text = f"Instruction number {i} for this little clip." if i != 3 else "too short"  # one rule skip
        entries.append({"source_video_path": f"s{i}_src.mp4", "target_video_path": f"s{i}_tgt.mp4",
                        "instruction": text})
    (root / "pairs.json").write_text(json.dumps(entries))
    return root


def _args(pairs: Path, release: Path, out: Path) -> list[str]:
    return ["vae", "--ckpt-dir", str(release), "--input", str(pairs / "pairs.json"), "--video-root", str(pairs),
            "--output-dir", str(out), "--vae-dtype", "float32", "--t5-dtype", "float32", "--text-len", "16",
            "--frame-num", "5", "--sampling-rate", "1", "--target-size", "32,48", "--num-workers", "0",
            "--no-progress", "--device", "cpu"]


def status(out: Path) -> dict:
    """What `revise-prep status --json` prints (read here in the test process: it only reads)."""
    return json.loads(json.dumps(folder_status(out)))


def test_live_run_then_killed_then_resumed(pairs, wan_release, tmp_path):
    out = tmp_path / "out"
    journal = sidecar_of(out) / ".inflight" / "w1-r0.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "revise_prep", *_args(pairs, wan_release, out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # freeze it once it is on its third sample
            sections = read_sections(journal) if journal.exists() else []
            if sections and sections[-1].ended >= 2 and sections[-1].open:
                assert freeze(proc.pid)
                break
            time.sleep(0.02)
        else:
            pytest.fail("the run never got to its third sample")
        frozen = read_sections(journal)[-1]
        entries = [json.loads(line) for line in journal.read_text().splitlines()]  # the journal, read plainly
        ended = {e["end"] for e in entries if "end" in e}
        assert frozen.open == [e["start"] for e in entries if "start" in e and e["start"] not in ended]
        assert len(frozen.open) == 1
        assert frozen.ended == sum("end" in e for e in entries) >= 2
        live = status(out)
        assert live["state"] == "running" and live["step"] == "vae" and live["samples"] == N
        [rank] = live["ranks"]
        assert rank["holder"].startswith(f"pid {proc.pid} on ") and rank["in_flight"] == frozen.open
        assert rank["processed"] == frozen.ended and rank["todo"] == N
        assert sum(live["counts"].values()) == frozen.ended  # done + skipped + failed so far
        assert live["to_do"] == N - frozen.ended and live["samples_per_second"] > 0 and live["eta_seconds"] > 0
        text = cli("status", str(sidecar_of(out))).stdout  # the command itself; the sidecar works as well
        assert json.loads(cli("status", str(out), "--json").stdout)["ranks"][0]["in_flight"] == frozen.open
        assert "running" in text and f"pid {proc.pid}" in text and f"now on {frozen.open[0]}" in text
        os.killpg(proc.pid, signal.SIGKILL)  # a stopped process dies of SIGKILL too
        proc.wait()
        died = status(out)
        assert died["state"] == "died" and died["ranks"][0]["holder"] is None
        assert died["ranks"][0]["in_flight"] == frozen.open and died["eta_seconds"] is None
        text = cli("status", str(out)).stdout
        assert f"DIED (pid {proc.pid}" in text and f"it was on {frozen.open[0]}" in text and "re-run" in text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    resumed = cli(*_args(pairs, wan_release, out)).stderr
    done = status(out)
    summary = json.loads((sidecar_of(out) / "summary.json").read_text())
    assert done["state"] == "finished" and done["ranks"][0]["earlier_deaths"] == 1
    assert {k: v for k, v in done["counts"].items() if v} == summary["by_status"]
    assert done["reasons"] == {"skipped": {"short_prompt": 1}}
    assert done["files"]["list_file"]["lines"] == N - 1 and done["files"]["failures"]["lines"] == 1
    assert done["records_indexed"] == N - 1
    # the log a person reads: no module paths, the summary by reason and where the reports are, one rate
    meta = sidecar_of(out)
    assert "revise_prep." not in resumed and " INFO " not in resumed, resumed
    assert "skipped 1 (short_prompt 1)" in resumed
    assert f"list file ({N - 1} records): {meta / 'vae_features.txt'}" in resumed
    assert f"failures.jsonl (1 sample skipped or failed, one line each): {meta / 'failures.jsonl'}" in resumed
    assert f"summary.json: {meta / 'summary.json'}" in resumed
    assert len([line for line in resumed.splitlines() if "samples/s" in line]) == 1, resumed
    # the rate is computed before summary.json rounds the seconds to ms (and itself to 4 decimals): it lies
    # between what the rounded seconds' half-ms bounds give (a fast run: 3 in 0.193 s is 15.51-15.58)
    seconds, processed = summary["seconds"], summary["processed"]
    assert processed / (seconds + 5e-4) - 5e-5 <= summary["samples_per_second"] <= processed / (seconds - 5e-4) + 5e-5
    assert summary["processed"] == N - summary["by_status"].get("resumed", 0)  # this run's: not those resumed
    again = cli(*_args(pairs, wan_release, out)).stderr  # a finished job re-run: its rule skip is counted
    assert "short_prompt:" not in again and "1 sample(s) skipped again for the reason an earlier run recorded " \
        "(short_prompt 1" in again, again
    assert f"resumed {N - 1}, skipped 1 (short_prompt 1); 1 processed in " in again  # and no rate: nothing written
    assert "samples/s" not in again, again


def test_two_ranks_one_finished(pairs, wan_release, tmp_path):
    out = tmp_path / "out"
    cli(*_args(pairs, wan_release, out), env={"RANK": "1", "WORLD_SIZE": "2"})
    half = status(out)
    assert half["world_size"] == 2 and half["state"] == "partly finished"
    assert [r["state"] for r in half["ranks"]] == ["not started", "finished"]
    assert half["counts"]["done"] + half["counts"]["skipped"] == N // 2  # rank 1's share, from its report
    assert not half["files"]["summary"]["exists"]
    cli(*_args(pairs, wan_release, out), env={"RANK": "0", "WORLD_SIZE": "2"})
    whole = status(out)
    assert whole["state"] == "finished" and whole["counts"]["done"] == N - 1 and whole["counts"]["skipped"] == 1


def test_not_an_output_folder(tmp_path):
    proc = cli("status", str(tmp_path), check=False)
    assert proc.returncode == 2 and "not an output folder" in proc.stderr and "Traceback" not in proc.stderr
