"""Records round-trip through plain pickle; the restricted unpickler refuses anything else."""

import os
import pickle

import pytest
import torch

from revise_prep.records.atomic import _create_temporary, atomic_write_bytes, clean_temporaries
from revise_prep.records.reader import as_training_sample, iter_dataset, load_record
from revise_prep.records.safe_pickle import UnsafePickleError, dumps, safe_load, safe_loads


def record():
    return {"latent_feature": torch.randn(16, 2, 3, 4), "text_emb": [torch.randn(5, 8).to(torch.bfloat16)],
            "vlm": torch.randn(1, 3, 4).half(), "prompt": "p", "frame_num": 5, "meta": {"x": [1, 2.5, None, True]}}


def test_round_trip_matches_plain_pickle(tmp_path):
    rec = record()
    data = dumps(rec)
    for loaded in (safe_loads(data), pickle.loads(data)):  # training code uses plain pickle.load
        assert loaded.keys() == rec.keys()
        for key in ("latent_feature", "vlm"):
            assert torch.equal(loaded[key], rec[key]) and loaded[key].dtype == rec[key].dtype
        assert torch.equal(loaded["text_emb"][0], rec["text_emb"][0])
        assert loaded["meta"] == rec["meta"]


class Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    target = tmp_path / "pwned"
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"latent_feature": Evil(str(target))}))
    with pytest.raises(UnsafePickleError, match=r"bad\.pkl: refusing to load io\.open"):
        safe_load(bad)
    assert not target.exists()
    with pytest.raises(UnsafePickleError):
        safe_loads(pickle.dumps(os.system))


def test_malicious_storage_payload_is_refused(tmp_path):
    # a pickle that routes an evil payload through torch's own storage loader must not run it either
    target = tmp_path / "pwned2"
    inner = pickle.dumps(Evil(str(target)))

    class Storage:
        def __reduce__(self):
            import torch.storage
            return (torch.storage._load_from_bytes, (inner,))

    with pytest.raises(pickle.UnpicklingError):
        safe_loads(pickle.dumps({"x": Storage()}))
    assert not target.exists()


def test_training_view_and_list_reader(tmp_path):
    rec = {"t5_emb": [torch.ones(3, 4)], "prompt": "p", "latent_features": torch.zeros(1)}
    atomic_write_bytes(tmp_path / "a.pkl", dumps(rec))
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'a.pkl'}\na.pkl\n")  # an absolute and a relative line
    seen = list(iter_dataset(tmp_path / "list.txt"))
    assert len(seen) == 2
    for sample in seen:
        assert "t5_emb" not in sample and torch.equal(sample["text_emb"], torch.ones(3, 4))
    two = as_training_sample({"text_emb": [torch.ones(1), torch.ones(1)]})
    assert isinstance(two["text_emb"], list)  # only a single-element list is unwrapped


def test_load_record_rejects_non_dict(tmp_path):
    (tmp_path / "l.pkl").write_bytes(dumps([1, 2]))
    with pytest.raises(ValueError, match="not a record"):
        load_record(tmp_path / "l.pkl")


def test_atomic_write_leaves_no_partial_file(tmp_path):
    atomic_write_bytes(tmp_path / "f", b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "f", 12345)  # write fails mid-way
    assert (tmp_path / "f").read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [tmp_path / "f"]
    (tmp_path / ".tmp-f.abc_1234").write_bytes(b"partial")  # an earlier version's temporary name
    os.close(_create_temporary(tmp_path, "f")[0])  # a killed writer's
    (tmp_path / ".tmp-g.def_5678").write_bytes(b"someone else's write")
    assert clean_temporaries(tmp_path, {"f"}) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-g.def_5678", "f"]
    assert clean_temporaries(tmp_path) == 1 and list(tmp_path.iterdir()) == [tmp_path / "f"]
