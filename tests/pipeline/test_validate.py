"""``revise-prep validate``: every planted problem found with the pipeline's reason, nothing on good samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from revise_prep import errors
from revise_prep.cli import main
from revise_prep.inputs.loader import MALFORMED_ENTRY
from revise_prep.records.naming import DUPLICATE_SAMPLE
from revise_prep.settings import FrameSettings
from revise_prep.testing.videos import make_audio_only, make_empty, make_not_a_video, make_video
from revise_prep.video import count_frames_decode, read_clip

FRAMES = ["--frame_num", "5", "--sampling-rate", "3", "--target-size", "32,48"]  # the original's spelling too
SETTINGS = FrameSettings(frame_num=5, interval=3, skip=0, height=32, width=48)
TEXT = "Turn the moving shapes into glowing lanterns at dusk."

# index -> (status, reason) for every planted problem; the good samples 0, 1 and 12 must not appear.
EXPECTED = {
    2: ("failed", errors.MISSING_FILE),
    3: ("failed", errors.EMPTY_FILE),
    4: ("failed", errors.CANNOT_OPEN),
    5: ("skipped", errors.INSUFFICIENT_FRAMES),
    6: ("skipped", errors.ORIENTATION_MISMATCH),
    7: ("skipped", errors.SHORT_PROMPT),
    8: ("skipped", DUPLICATE_SAMPLE),
    10: ("failed", MALFORMED_ENTRY),
    13: ("failed", errors.NO_VIDEO_STREAM),
}
WARNINGS = {9: "name_collision", 11: "interval_lowered"}  # processed, but reported
GOOD = {0, 1, 12}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("validate")
    v = root / "videos"
    sizes = {"src0": (64, 40, 16), "tgt0": (64, 40, 16), "src1": (80, 48, 18), "tgt1": (64, 40, 16),
             "tgt2": (64, 40, 16), "clip": (48, 48, 16), "usable": (64, 40, 12), "short": (64, 40, 4),
             "portrait": (40, 64, 16)}  # name: (width, height, frames)
    for name, (w, h, n) in sizes.items():
        make_video(v / f"{name}.mp4", frames=n, width=w, height=h, seed=len(name))
    make_video(v / "other" / "tgt0.mp4", frames=16, width=64, height=40, seed=9)
    make_empty(v / "empty.mp4")
    make_not_a_video(v / "text.mp4")
    make_audio_only(v / "audio.mkv")

    def pair(s: str, t: str, text: str = TEXT) -> dict:
        return {"source_video_path": f"videos/{s}", "target_video_path": f"videos/{t}", "instruction": text}

    entries = [
        pair("src0.mp4", "tgt0.mp4"),                      # 0 good
        pair("src1.mp4", "tgt1.mp4", TEXT + "\nSlowly."),  # 1 good
        pair("gone.mp4", "tgt1.mp4", TEXT + " 2"),         # 2 missing source
        pair("src1.mp4", "empty.mp4", TEXT + " 3"),        # 3 zero-byte target
        pair("text.mp4", "tgt1.mp4", TEXT + " 4"),         # 4 not a video
        pair("short.mp4", "tgt1.mp4", TEXT + " 5"),        # 5 too short even at interval 1
        pair("src1.mp4", "portrait.mp4", TEXT + " 6"),     # 6 portrait target for a landscape size
        pair("src1.mp4", "tgt1.mp4", "too short"),         # 7 instruction of 9 characters
        pair("src0.mp4", "tgt0.mp4"),                      # 8 exact duplicate of 0
        pair("src1.mp4", "other/tgt0.mp4", TEXT + " 9"),   # 9 target name collides with 0 (renamed)
        {"source_video_path": "videos/src0.mp4", "instruction": TEXT},  # 10 malformed: no target
        pair("usable.mp4", "tgt2.mp4", TEXT + " 11"),      # 11 short but usable: interval lowered
        {"video": "videos/clip.mp4",                      # 12 good caption sample (square video)
         "conversations": [{"from": "human", "value": "Describe the video."},
                           {"from": "gpt", "value": "Bright shapes drift over a gradient."}]},
        pair("audio.mkv", "tgt1.mp4", TEXT + " 13"),       # 13 no video stream
    ]
    (root / "pairs.json").write_text(json.dumps(entries, indent=1))
    (root / "good.json").write_text(json.dumps([entries[i] for i in sorted(GOOD)], indent=1))
    text_checks = [pair("src0.mp4", "tgt0.mp4", "Make it snow. " * 200),  # ~2800 characters
                   pair("src1.mp4", "tgt1.mp4", "Turn the cafÃ© sign into neon lights.")]  # mojibake
    (root / "text.json").write_text(json.dumps(text_checks))
    return root


def _validate(dataset: Path, *extra: str, input_name: str = "pairs.json") -> int:
    return main(["validate", str(dataset / input_name), "--video-root", str(dataset), *FRAMES, "--workers", "4",
                 *extra])


@pytest.fixture(scope="module")
def report(dataset, tmp_path_factory) -> tuple[int, dict[int, dict], str]:
    out = tmp_path_factory.mktemp("report") / "v.jsonl"
    rc = _validate(dataset, "--report", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return rc, {line["index"]: line for line in lines}, out.read_text()


def test_every_planted_problem_found_with_the_pipeline_reason(report):
    _, lines, _ = report
    for index, (status, reason) in EXPECTED.items():
        assert (lines[index]["status"], lines[index]["reason"]) == (status, reason), lines[index]
        assert lines[index]["message"]
    assert set(lines) == set(EXPECTED) | set(WARNINGS)  # nothing on the good samples
    for index, code in WARNINGS.items():
        assert lines[index]["status"] == "warning" and lines[index]["reason"] is None
        assert [w["code"] for w in lines[index]["warnings"]] == [code]


def test_renamed_collision_reports_the_new_name(report):
    _, lines, _ = report
    assert lines[9]["name"].startswith("tgt0-") and "'tgt0'" in lines[9]["warnings"][0]["message"]
    assert lines[8]["message"].endswith("as sample #0")


def test_reported_interval_equals_the_original_rule(report, dataset):
    _, lines, _ = report
    total = count_frames_decode(dataset / "videos" / "usable.mp4")  # the original counts by decoding
    rate = SETTINGS.interval
    while rate > 0 and total < SETTINGS.frame_num * rate + SETTINGS.skip:  # the original's loop, written out
        rate -= 1
    assert 0 < rate < SETTINGS.interval
    assert lines[11]["intervals"]["source"] == rate
    assert lines[11]["intervals"]["target"] == SETTINGS.interval
    assert lines[11]["warnings"][0]["interval"] == rate


@pytest.mark.parametrize("name", ["empty.mp4", "text.mp4", "short.mp4", "portrait.mp4", "audio.mkv", "gone.mp4"])
def test_video_reasons_match_step1_reader(report, dataset, name):
    """The reader step 1 uses raises the very reason validate reported for that video."""
    _, lines, _ = report
    reported = {line["problems"][0]["reason"] for line in lines.values()
                if line.get("problems") and name in line["problems"][0]["message"]}
    with pytest.raises(errors.VideoError) as err:
        read_clip(dataset / "videos" / name, SETTINGS)
    assert reported == {err.value.reason}


def test_exit_status_table_and_default_report(report, dataset, tmp_path, monkeypatch, capsys):
    rc, _, text = report
    assert rc == 1
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert _validate(dataset, "--allow-skips") == 0
    table = capsys.readouterr().out
    assert (tmp_path / "validate.jsonl").read_text() == text  # default report in the current directory
    counts = {parts[0]: int(parts[1]) for parts in (line.split() for line in table.splitlines()) if len(parts) == 2
              and parts[1].isdigit()}
    assert counts["ok"] == len(GOOD) and counts["warning"] == len(WARNINGS)
    assert counts["failed"] == sum(s == "failed" for s, _ in EXPECTED.values())
    assert counts["skipped"] == sum(s == "skipped" for s, _ in EXPECTED.values())
    for _, reason in EXPECTED.values():
        assert counts[reason] == 1


def test_good_samples_only_pass(dataset, tmp_path):
    out = tmp_path / "good.jsonl"
    assert _validate(dataset, "--report", str(out), input_name="good.json") == 0
    assert out.read_text() == ""


def test_long_and_garbled_instructions_warn(dataset, tmp_path):
    out = tmp_path / "text.jsonl"
    assert _validate(dataset, "--report", str(out), input_name="text.json") == 0  # warnings do not fail
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(w["status"], [c["code"] for c in w["warnings"]]) for w in lines] == [
        ("warning", ["long_prompt"]), ("warning", ["suspicious_text"])]


def test_step2_checks_on_the_source(tmp_path):
    """A source whose header promises 60 frames with fewer packets present: step 1 copes, `run`'s AR-frame read
    fails, so validate reports that failure (and ``--vae-only`` does not)."""
    from revise_prep.models.vila.frames import load_ar_frames
    from revise_prep.testing.videos import make_truncated

    v = tmp_path / "videos"
    make_video(v / "long.mp4", frames=60, width=64, height=40, gop=4, faststart=True)
    make_truncated(v / "long.mp4", v / "cut.mp4", keep_fraction=0.5)
    make_video(v / "tgt.mp4", frames=16, width=64, height=40)
    pairs = [{"source_video_path": "videos/cut.mp4", "target_video_path": "videos/tgt.mp4", "instruction": TEXT},
             {"source_video_path": "videos/tgt.mp4", "target_video_path": "videos/cut.mp4", "instruction": TEXT}]
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    read_clip(v / "cut.mp4", SETTINGS)  # step 1 reads it (as the original: the frames that decode)
    with pytest.raises(errors.VideoError) as err:  # step 2's reader refuses it
        load_ar_frames(v / "cut.mp4")
    report = tmp_path / "report.jsonl"
    args = ["validate", str(tmp_path / "pairs.json"), "--video-root", str(tmp_path), *FRAMES, "--report", str(report)]
    assert main(args) == 1
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(r["index"], r["status"], r["reason"]) for r in lines] == [(0, "failed", err.value.reason)]
    assert "source video (AR frames)" in lines[0]["message"] and "promises 60 frames" in lines[0]["message"]
    assert main([*args, "--vae-only"]) == 0  # only the target of #1 is cut, which step 2 never reads
