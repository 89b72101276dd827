"""A shared-cluster job end to end: a step-1 run from one folder, read from another and by another user; names the
filesystem takes but the old code could not write; the original step 2 listing our folder; an earlier layout migrated."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from revise_prep.records import iter_dataset, load_record
from revise_prep.records.layout import sidecar_of
from revise_prep.testing.videos import make_video

from .conftest import as_another_user, cli

LONG = "L" * 247  # a 251-character target file name: its record name fits, old temporaries did not
CJK = "中" * 80  # 240 bytes
DEEP = "s" * 250  # a source folder whose name, prefixed to a short target name, is too long for a record name
INSTRUCTION = "Turn the whole scene into a snowy winter evening, please."
EXPECTED_NAMES = {0: "plain_target", 1: LONG, 2: CJK, 3: "two_lines"}


def _pairs(root: Path) -> list[dict]:
    v = root / "v"
    src = make_video(v / "src.mp4", frames=8, width=48, height=32, seed=1)
    tgt = make_video(v / "plain_target.mp4", frames=8, width=48, height=32, seed=2)
    links = {"t1/" + LONG + ".mp4": tgt, "t2/" + LONG + ".mp4": tgt, CJK + ".mp4": tgt, "two\nlines.mp4": tgt,
             DEEP + "/src.mp4": src, "abc.mp4": tgt}
    for name, real in links.items():
        (v / name).parent.mkdir(parents=True, exist_ok=True)
        os.link(real, v / name)
    targets = ["plain_target.mp4", "t1/" + LONG + ".mp4", CJK + ".mp4", "two\nlines.mp4", "t2/" + LONG + ".mp4",
               "abc.mp4", "missing.mp4"]
    sources = ["src.mp4"] * 5 + [DEEP + "/src.mp4", "src.mp4"]
    return [{"source_video_path": "v/" + s, "target_video_path": "v/" + t, "instruction": f"{INSTRUCTION} {i}"}
            for i, (s, t) in enumerate(zip(sources, targets))]


def _vae(job: Path, wan_release: Path, *extra: str, status: int = 4) -> subprocess.CompletedProcess:
    """`vae` as a batch job would run it: from its own folder, relative paths, umask 022, stderr to a pipe."""
    old = os.umask(0o022)
    try:
        return cli("vae", "--ckpt-dir", str(wan_release), "--input", "../pairs.json", "--video-root", "..",
                   "--output-dir", "out", "--vae-dtype", "float32", "--t5-dtype", "float32", "--text-len", "16",
                   "--frame-num", "5", "--sampling-rate", "1", "--target-size", "32,48", "--num-workers", "0",
                   *extra, cwd=job, status=status)
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def job(wan_release):
    root = Path(tempfile.mkdtemp(prefix="revise-prep-shared-"))
    root.chmod(0o755)  # a project folder others can enter (pytest's own temporary folders are 0700)
    (root / "pairs.json").write_text(json.dumps(_pairs(root)))
    (root / "job").mkdir()
    proc = _vae(root / "job", wan_release)
    yield root, proc
    shutil.rmtree(root, ignore_errors=True)


def _listed(root: Path) -> list[str]:
    return (sidecar_of(root / "job" / "out") / "vae_features.txt").read_text().split("\n")[:-1]


def test_every_name_is_written_and_one_line_each(job):
    root, proc = job
    out = root / "job" / "out"
    listed = _listed(root)
    assert len(listed) == 6 and all(os.path.isabs(p) and Path(p).parent == out for p in listed)
    by_index = {load_record(p)["meta"]["sample_index"]: (Path(p).stem, load_record(p)["meta"]) for p in listed}
    assert sorted(by_index) == [0, 1, 2, 3, 4, 5]  # 6 (missing video) failed
    for index, name in EXPECTED_NAMES.items():
        assert by_index[index][0] == name
    assert by_index[3][1]["original_name"] == "two\nlines"
    renamed, meta = by_index[4]  # the long name again: renamed, and cut to fit with its hash
    assert meta["renamed_from"] == LONG and renamed.startswith(LONG[:200]) and len(renamed.encode()) + 4 <= 255
    deep, meta = by_index[5]
    assert meta["original_name"] == DEEP + "_abc" and len(deep.encode()) + 4 <= 255
    notes = [json.loads(line) for line in (sidecar_of(out) / "notes.jsonl").read_text().splitlines()]
    assert {n["index"] for n in notes if {"original_name", "renamed_from"} & set(n["extra"])} == {3, 4, 5}
    assert sum("prompt_truncated_from" in n["extra"] for n in notes) == 6  # --text-len 16 cuts every prompt
    [failure] = [json.loads(line) for line in (sidecar_of(out) / "failures.jsonl").read_text().splitlines()]
    assert failure["index"] == 6 and failure["reason"] == "missing_file"


def test_the_original_step2_lists_exactly_the_records(job):
    """What `VideoDataset` of the original ar_feature_extract_edit.py does with $DATA_FILE: os.listdir, then
    pickle.load of every entry; any entry that fails to load makes it recurse into the next one."""
    root, _ = job
    folder = root / "job" / "out"
    data = [os.path.join(folder, item) for item in os.listdir(folder)]
    ids = []
    for item in data:
        with open(item, "rb") as f:
            record = pickle.load(f)  # noqa: S301 - the original's own loader, on our records
        assert {"prompt", "video_path", "latent_feature", "text_emb", "frame_num", "latent_feature_tgt"} <= set(record)
        ids.append(os.path.splitext(os.path.basename(item))[0])
    assert sorted(ids) == sorted(Path(p).stem for p in _listed(root))


def test_files_are_readable_by_another_user_from_another_folder(job):
    root, _ = job
    out = root / "job" / "out"
    for folder in (out, sidecar_of(out)):
        for path in [folder, *folder.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    prefix = as_another_user()
    if prefix is None:
        pytest.skip("needs root to read as another user (the modes above are checked)")
    code = ("import sys; from revise_prep.records import iter_dataset; "
            "print(sum(1 for _ in iter_dataset(sys.argv[1])))")
    proc = subprocess.run([*prefix, sys.executable, "-c", code,
                           str(sidecar_of(out) / "vae_features.txt")], capture_output=True, text=True, cwd="/",
                          env={**os.environ, "HOME": "/tmp"}, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "6", proc.stderr[-2000:]


def test_log_has_no_bar_no_traceback_and_summarised_notices(job):
    _, proc = job
    log = proc.stderr
    assert "\r" not in log and "Traceback" not in log
    assert "vae: 7/7 samples (100.0%)" in log  # the progress line that replaces the bar off a terminal
    assert "exit status 4" in log
    assert log.count("the embedding keeps the first 16") == 5  # the first few, then a count
    assert "prompt cut: 1 more like this not shown (6 in all; every one is in notes.jsonl)" in log


def test_relative_list_and_reading_from_elsewhere(job, wan_release, monkeypatch):
    root, _ = job
    rerun = _vae(root / "job", wan_release, "--relative-paths")
    assert "resumed 6" in rerun.stderr
    listed = _listed(root)
    assert all(p.startswith("../out/") for p in listed)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    monkeypatch.chdir(elsewhere)
    assert len(list(iter_dataset(sidecar_of(root / "job" / "out") / "vae_features.txt"))) == 6
    proc = cli("inspect", "../job/out.revise-prep/vae_features.txt", "--json", cwd=elsewhere)
    assert json.loads(proc.stdout)["readable"] == 6


def test_an_earlier_layout_is_migrated_and_resumed(job, wan_release):
    root, _ = job
    old = root / "old"
    old.mkdir()
    shutil.copytree(root / "job" / "out", old / "out")
    for entry in sidecar_of(root / "job" / "out").iterdir():  # as versions before the sidecar wrote it
        (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, old / "out" / entry.name)
    proc = _vae(old, wan_release)
    assert "moved" in proc.stderr and "resumed 6" in proc.stderr
    assert all(name.endswith(".pkl") for name in os.listdir(old / "out"))
    assert len((sidecar_of(old / "out") / "vae_features.txt").read_text().splitlines()) == 6


def test_a_resumed_sample_keeps_its_notes(job, wan_release, tmp_path):
    """Resumed, a sample keeps in notes.jsonl and the summary what its encode noted (every prompt here is cut by
    --text-len 16), as well as its names: from the done-index, and from the records when the index is gone."""
    root, _ = job
    copy = tmp_path / "root"
    shutil.copytree(root, copy)  # copy2 keeps sizes and mtimes: the done-index trusts the copied records
    sidecar = sidecar_of(copy / "job" / "out")

    def notes() -> dict[int, dict]:
        return {n["index"]: n["extra"] for n in map(json.loads, (sidecar / "notes.jsonl").read_text().splitlines())}

    made = notes()
    assert sum("prompt_truncated_from" in extra for extra in made.values()) == 6
    for drop_index in (False, True):
        if drop_index:
            shutil.rmtree(sidecar / ".done")  # every record is read again
        log = _vae(copy / "job", wan_release).stderr
        assert f"notes.jsonl (6 records with a note: renamed, name changed, prompt cut or bucket chosen; one line " \
            f"each): {sidecar / 'notes.jsonl'}" in log, log
        summary = json.loads((sidecar / "summary.json").read_text())
        assert summary["by_status"] == {"failed": 1, "resumed": 6}
        assert notes() == made and summary["truncated_prompts"] == 6
