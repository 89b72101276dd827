"""Resume checks: full record validation, and the done-index shortcut that trusts only unchanged files."""

import os

import torch

from revise_prep.pipeline import resume
from revise_prep.records.atomic import atomic_write_bytes
from revise_prep.records.safe_pickle import dumps

SETTINGS = {"frame_num": 5, "vae": "x"}


def write(path, settings=SETTINGS, **drop):
    rec = {"latent_feature": torch.zeros(2), "latent_feature_tgt": torch.zeros(2), "prompt": "p",
           "text_emb": [torch.zeros(1, 2)], "video_path": "v", "frame_num": 5,
           "meta": {"step": "vae", "settings": settings}}
    for key in drop:
        rec.pop(key)
    atomic_write_bytes(path, dumps(rec))


def test_check_record_states(tmp_path):
    assert resume.check_record(tmp_path / "none.pkl", "vae", SETTINGS)[0] == resume.MISSING
    write(tmp_path / "ok.pkl")
    assert resume.check_record(tmp_path / "ok.pkl", "vae", SETTINGS) == (resume.VALID, "")
    write(tmp_path / "other.pkl", {"frame_num": 9, "vae": "x"})
    state, detail = resume.check_record(tmp_path / "other.pkl", "vae", SETTINGS)
    assert state == resume.MISMATCHED and "frame_num=9 (now 5)" in detail
    # a setting added since the record was made (e.g. auto_rotate): redone, and the message says why
    write(tmp_path / "older.pkl", {"vae": "x"})
    state, detail = resume.check_record(tmp_path / "older.pkl", "vae", {**SETTINGS, "auto_rotate": True})
    assert state == resume.MISMATCHED and "auto_rotate not recorded (made by an older version; now True)" in detail
    write(tmp_path / "nokey.pkl", prompt=True)
    assert resume.check_record(tmp_path / "nokey.pkl", "vae", SETTINGS)[0] == resume.INVALID
    (tmp_path / "cut.pkl").write_bytes((tmp_path / "ok.pkl").read_bytes()[:50])
    assert resume.check_record(tmp_path / "cut.pkl", "vae", SETTINGS)[0] == resume.INVALID
    assert resume.check_record(tmp_path / "ok.pkl", "ar", SETTINGS)[0] == resume.INVALID  # lacks step-2 keys


def test_bucketed_records_hold_their_own_size_and_frame_count(tmp_path):
    """With buckets, meta.settings holds the record's own size / frame count (not the run's unused
    --target-size / --frame-num): still valid; records of the earlier meta (the run's values) too."""
    run = {"frame_num": 81, "height": 480, "width": 832, "interval": 3, "buckets": ["32x48", "48x32"],
           "frame_buckets": [9, 5], "vae": "x"}
    write(tmp_path / "own.pkl", {**run, "frame_num": 5, "height": 48, "width": 32})
    write(tmp_path / "earlier.pkl", run)
    for name in ("own.pkl", "earlier.pkl"):
        assert resume.check_record(tmp_path / name, "vae", run) == (resume.VALID, ""), name
    write(tmp_path / "interval.pkl", {**run, "frame_num": 5, "interval": 2})  # other keys are still compared
    assert resume.check_record(tmp_path / "interval.pkl", "vae", run)[0] == resume.MISMATCHED
    write(tmp_path / "set.pkl", {**run, "buckets": ["32x48"]})
    assert resume.check_record(tmp_path / "set.pkl", "vae", run)[0] == resume.MISMATCHED
    sizes_only = {k: v for k, v in run.items() if k != "frame_buckets"}  # --buckets alone: the count is the run's
    write(tmp_path / "count.pkl", {**sizes_only, "frame_num": 5})
    assert resume.check_record(tmp_path / "count.pkl", "vae", sizes_only)[0] == resume.MISMATCHED
    plain = {"frame_num": 5, "height": 32, "width": 48, "vae": "x"}  # without buckets every key is compared
    write(tmp_path / "plain.pkl", {**plain, "height": 48})
    assert resume.check_record(tmp_path / "plain.pkl", "vae", plain)[0] == resume.MISMATCHED


def test_done_index_trusts_only_unchanged_files(tmp_path):
    write(tmp_path / "a.pkl")
    sig = resume.signature_hash(SETTINGS)
    index = resume.DoneIndex(tmp_path, 0, 1)
    index.add(tmp_path / "a.pkl", sig)
    index.close()
    with open(tmp_path / ".done" / "w1-r0.jsonl", "a") as f:
        f.write('{"name": "b.pkl", "size": ')  # torn line from a kill
    again = resume.DoneIndex(tmp_path, 0, 1)
    assert again.trusted(tmp_path / "a.pkl", sig)
    assert not again.trusted(tmp_path / "a.pkl", resume.signature_hash({**SETTINGS, "frame_num": 9}))
    st = os.stat(tmp_path / "a.pkl")
    os.utime(tmp_path / "a.pkl", ns=(st.st_atime_ns, st.st_mtime_ns + 1000))  # rewritten in place
    assert not again.trusted(tmp_path / "a.pkl", sig)
    assert not again.trusted(tmp_path / "b.pkl", sig)
    again.close()


def test_map_tensors_reaches_every_tensor():
    """What Decoded.pin_memory walks: tensors inside dicts, lists and dataclasses (e.g. a Clip's frames)."""
    from dataclasses import dataclass

    from revise_prep.pipeline.stage import map_tensors

    @dataclass
    class Box:
        frames: torch.Tensor
        n: int

    out = map_tensors({"clips": [Box(torch.ones(2), 3)], "x": "s", "t": torch.zeros(1)}, lambda t: t + 1)
    assert torch.equal(out["clips"][0].frames, torch.full((2,), 2.0)) and out["clips"][0].n == 3
    assert out["x"] == "s" and torch.equal(out["t"], torch.ones(1))
