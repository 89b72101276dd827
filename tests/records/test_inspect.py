"""inspect: describes records and flags non-finite values."""

import json

import torch

from revise_prep.cli import main
from revise_prep.records.atomic import atomic_write_bytes
from revise_prep.records.inspect import inspect_list, inspect_record
from revise_prep.records.reports import write_list
from revise_prep.records.safe_pickle import dumps


def _write(path, latent):
    atomic_write_bytes(path, dumps({"latent_feature": latent, "text_emb": [torch.ones(3, 8, dtype=torch.bfloat16)],
                                    "prompt": "a prompt of some length", "frame_num": 5, "meta": {"step": "vae"}}))


def test_record_fields_and_nan(tmp_path, capsys):
    good = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    bad = good.clone()
    bad[0, 0, 0] = float("nan")
    bad[1, 2, 3] = float("inf")  # the largest value
    _write(tmp_path / "good.pkl", good)
    _write(tmp_path / "bad.pkl", bad)
    info = inspect_record(tmp_path / "good.pkl")
    lat = info["fields"]["latent_feature"]
    assert lat["shape"] == [2, 3, 4] and lat["min"] == 0 and lat["max"] == 23 and lat["nan"] == 0
    assert info["fields"]["text_emb"]["items"][0]["dtype"] == "bfloat16"
    assert info["problems"] == []
    bad_info = inspect_record(tmp_path / "bad.pkl")
    assert bad_info["problems"] == ["latent_feature: 1 NaN, 1 Inf"]
    assert bad_info["fields"]["latent_feature"]["max"] == 22  # range over finite values only
    assert main(["inspect", str(tmp_path / "good.pkl")]) == 0
    assert main(["inspect", str(tmp_path / "bad.pkl")]) == 1
    assert "PROBLEM" in capsys.readouterr().out


def test_list_summary_json(tmp_path, capsys):
    for i, shape in enumerate([(2, 3), (2, 3), (4, 1)]):
        _write(tmp_path / f"r{i}.pkl", torch.zeros(shape))
    (tmp_path / "broken.pkl").write_bytes(b"\x80\x04not a pickle")
    write_list(tmp_path / "list.txt", [str(tmp_path / f) for f in ("r0.pkl", "r1.pkl", "r2.pkl", "broken.pkl")])
    info = inspect_list(tmp_path / "list.txt")
    assert info["records"] == 4 and info["readable"] == 3
    assert info["shapes"]["latent_feature"] == {"2x3": 2, "4x1": 1}
    assert list(info["unreadable"]) == [str(tmp_path / "broken.pkl")]
    assert main(["inspect", "--json", str(tmp_path / "list.txt")]) == 1
    assert json.loads(capsys.readouterr().out)["prompt_length"]["max"] == len("a prompt of some length")


def test_damaged_records_are_one_line_exit_1(tmp_path, caplog):
    """inspect, preview and convert name a damaged record and the reason in one line (no traceback), exit 1."""
    import logging

    good = torch.zeros(2, 3)
    _write(tmp_path / "r.pkl", good)
    data = (tmp_path / "r.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pkl").write_bytes(b"")
    for argv, name in ((["inspect", str(tmp_path / "cut.pkl")], "cut.pkl"),
                       (["inspect", str(tmp_path / "empty.pkl")], "empty.pkl"),
                       (["preview", str(tmp_path / "cut.pkl"), "--out", str(tmp_path / "p.png")], "cut.pkl"),
                       (["convert", str(tmp_path / "cut.pkl"), "--to", "safetensors"], "cut.pkl")):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert main(argv) == 1, argv
        [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        message = error.getMessage()
        assert message.startswith(str(tmp_path / name)) and "\n" not in message and not error.exc_info, message
        assert ("empty file" if name == "empty.pkl" else "truncated") in message, message
