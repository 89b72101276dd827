"""Every kind of bad input gets its own reason and a message naming the sample; good samples all complete."""

from __future__ import annotations

import json

import pytest

from revise_prep.records import load_record
from revise_prep.records.layout import sidecar_of
from revise_prep.testing.videos import (make_audio_only, make_empty, make_not_a_video, make_truncated,
                                        make_vfr_video, make_video)

from .conftest import cli

TEXT = "Turn the moving shapes into glowing lanterns at dusk"
LONG = " ".join(["and then the lanterns drift slowly upwards into the sky"] * 20)  # far beyond text_len 64


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, wan_release):
    root = tmp_path_factory.mktemp("bad")
    v = root / "v"
    for name in ("good0", "good1", "good2", "tgt"):
        make_video(v / f"{name}.mp4", frames=12, width=64, height=40, seed=len(name) + ord(name[-1]))
    make_video(v / "short.mp4", frames=4, width=64, height=40)
    make_video(v / "portrait.mp4", frames=12, width=40, height=64)
    make_video(v / "rotated.mp4", frames=12, width=40, height=64, rotation=90)  # a phone clip: stored portrait
    make_vfr_video(v / "vfr.mp4", frames=12, width=64, height=40)
    make_empty(v / "empty.mp4")
    make_not_a_video(v / "text.mp4")
    make_audio_only(v / "audio.mkv")
    make_video(v / "long.mp4", frames=60, width=64, height=40, gop=4, faststart=True)
    make_truncated(v / "long.mp4", v / "cut.mp4", keep_fraction=0.5)  # index promises 60, fewer decode
    def pair(src, text=TEXT, tgt="tgt"):
        return {"source_video_path": f"v/{src}.mp4" if "." not in src else f"v/{src}",
                "target_video_path": f"v/{tgt}.mp4", "instruction": text}
    entries = [
        pair("good0", tgt="good0"),                               # 0 ok
        pair("missing"),                                          # 1 missing_file
        pair("empty"),                                            # 2 empty_file
        pair("text"),                                             # 3 cannot_open
        pair("audio.mkv"),                                        # 4 no_video_stream
        pair("short"),                                            # 5 insufficient_frames
        pair("portrait"),                                         # 6 orientation_mismatch
        pair("rotated", tgt="good1"),                             # 7 ok: displayed landscape, turned upright
        pair("vfr", tgt="good2"),                                 # 8 ok: variable frame rate
        pair("good1", text=""),                                   # 9 short_prompt (empty)
        pair("good1", text="too short"),                          # 10 short_prompt
        pair("good2", text=LONG, tgt="good1"),                    # 11 ok, prompt truncated (counted)
        pair("good0", tgt="good0"),                               # 12 duplicate_sample
        {"source_video_path": "v/good0.mp4", "target_video_path": 7, "instruction": TEXT},  # 13 malformed_entry
        pair("cut", tgt="good2"),                                 # 14 ok: counted frames as the original
    ]
    (root / "pairs.json").write_text(json.dumps(entries))
    args = ["vae", "--ckpt-dir", str(wan_release), "--input", str(root / "pairs.json"), "--video-root", str(root),
            "--output-dir", str(root / "out"), "--vae-dtype", "float32", "--t5-dtype", "float32", "--text-len", "64",
            "--frame-num", "5", "--sampling-rate", "2", "--target-size", "32,48", "--num-workers", "2"]
    refused = cli(*args, check=False)
    cli(*args, "--skip-bad-entries", status=4)
    return root, refused


EXPECTED = {1: "missing_file", 2: "empty_file", 3: "cannot_open", 4: "no_video_stream", 5: "insufficient_frames",
            6: "orientation_mismatch", 9: "short_prompt", 10: "short_prompt", 12: "duplicate_sample",
            13: "malformed_entry"}


def test_malformed_entry_stops_before_work_without_the_flag(matrix):
    root, refused = matrix
    assert refused.returncode == 2
    assert "entry 13" in refused.stderr and "'target_video_path' must be a string" in refused.stderr


def test_every_bad_input_has_its_reason_and_good_ones_complete(matrix):
    root, _ = matrix
    out = root / "out"
    fails = {f["index"]: f for f in map(json.loads, (sidecar_of(out) / "failures.jsonl").read_text().splitlines())}
    assert {i: f["reason"] for i, f in fails.items()} == EXPECTED
    for index, failure in fails.items():
        assert failure["message"] and (f"#{index}" in failure["message"] or f"entry {index}" in failure["message"])
    listed = (sidecar_of(out) / "vae_features.txt").read_text().splitlines()
    records = {load_record(p)["meta"]["sample_index"]: load_record(p) for p in listed}
    assert sorted(records) == [0, 7, 8, 11, 14]
    assert records[7]["meta"]["videos"]["source"]["rotation"] == 90  # the rotation applied
    assert records[7]["meta"]["videos"]["source"]["display_rotation"] == 90
    assert records[11]["meta"]["prompt_truncated_from"] > 64 and records[11]["text_emb"][0].shape[0] == 64
    summary = json.loads((sidecar_of(out) / "summary.json").read_text())
    assert summary["truncated_prompts"] == 1 and summary["by_status"]["done"] == 5
