"""safetensors records round-trip exactly; `convert` goes both ways."""

import torch

from revise_prep.cli import main
from revise_prep.records.atomic import atomic_write_bytes
from revise_prep.records.formats import deserialize, from_safetensors, serialize, to_safetensors
from revise_prep.records.reader import load_record
from revise_prep.records.reports import read_list, write_list


def record():
    g = torch.Generator().manual_seed(0)
    return {"latent_features": torch.randn(16, 2, 3, 4, generator=g), "t5_emb": [torch.randn(5, 8).bfloat16()],
            "vlm_last_hidden_states": torch.randn(1, 7, 8).half(), "prompt": "p ü", "frame_num": 5,
            "video_path_tgt": "a/b.mp4", "meta": {"settings": {"frame_num": 5}, "indices": [0, 2, 4]}}


def same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k])
        elif isinstance(a[k], list) and a[k] and isinstance(a[k][0], torch.Tensor):
            assert all(torch.equal(x, y) and x.dtype == y.dtype for x, y in zip(a[k], b[k]))
        else:
            assert a[k] == b[k]


def test_round_trip():
    rec = record()
    same(rec, from_safetensors(to_safetensors(rec)))
    same(rec, deserialize(serialize(rec, "x.safetensors"), "x.safetensors"))
    same(rec, deserialize(serialize(rec, "x.pkl"), "x.pkl"))


def test_convert_both_ways(tmp_path):
    rec = record()
    atomic_write_bytes(tmp_path / "r.pkl", serialize(rec, "r.pkl"))
    write_list(tmp_path / "list.txt", [str(tmp_path / "r.pkl")])
    assert main(["convert", str(tmp_path / "list.txt"), "--to", "safetensors", "--output-dir", str(tmp_path / "st")]) == 0
    same(rec, load_record(tmp_path / "st" / "r.safetensors"))
    assert read_list(tmp_path / "st" / "list.safetensors.txt") == [str((tmp_path / "st" / "r.safetensors").resolve())]
    assert main(["convert", str(tmp_path / "st"), "--to", "pickle", "--output-dir", str(tmp_path / "back")]) == 0
    same(rec, load_record(tmp_path / "back" / "r.pkl"))


def test_convert_does_not_overwrite_unless_asked(tmp_path, caplog):
    rec = record()
    atomic_write_bytes(tmp_path / "r.pkl", serialize(rec, "r.pkl"))
    (tmp_path / "r.safetensors").write_text("an unrelated file the user keeps\n")
    assert main(["convert", str(tmp_path / "r.pkl"), "--to", "safetensors"]) == 1
    assert (tmp_path / "r.safetensors").read_text() == "an unrelated file the user keeps\n"
    assert f"{tmp_path / 'r.safetensors'} exists; nothing converted (--overwrite replaces it)" in caplog.text
    assert main(["convert", str(tmp_path / "r.pkl"), "--to", "safetensors", "--overwrite"]) == 0
    same(rec, load_record(tmp_path / "r.safetensors"))
    write_list(tmp_path / "list.txt", [str(tmp_path / "r.pkl")])  # the converted list file is a target too
    (tmp_path / "list.safetensors.txt").write_text("keep me\n")
    (tmp_path / "r.safetensors").unlink()
    assert main(["convert", str(tmp_path / "list.txt"), "--to", "safetensors"]) == 1
    assert (tmp_path / "list.safetensors.txt").read_text() == "keep me\n" and not (tmp_path / "r.safetensors").exists()


def test_convert_writes_the_per_shape_lists(tmp_path):
    """A list file of bucketed records converts into a list plus one list per shape beside it, as the run wrote."""
    from revise_prep.records.shapes import shape_list_path, sibling_shape_lists

    paths, shapes = [], ["9x32x48", "5x48x32", "9x32x48"]
    for i, shape in enumerate(shapes):
        f, h, w = map(int, shape.split("x"))
        rec = {**record(), "meta": {"bucket": {"size": [h, w], "frame_num": f}}}
        atomic_write_bytes(tmp_path / f"r{i}.pkl", serialize(rec, "r.pkl"))
        paths.append(str(tmp_path / f"r{i}.pkl"))
    write_list(tmp_path / "train_list.txt", paths)
    assert main(["convert", str(tmp_path / "train_list.txt"), "--to", "safetensors", "--output-dir",
                 str(tmp_path / "st")]) == 0
    converted = tmp_path / "st" / "train_list.safetensors.txt"
    lines = read_list(converted)
    assert sorted(sibling_shape_lists(converted)) == ["5x48x32", "9x32x48"]
    for shape in ("9x32x48", "5x48x32"):
        assert read_list(shape_list_path(converted, shape)) == [p for p, s in zip(lines, shapes) if s == shape]
