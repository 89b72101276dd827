"""The README's main command: `revise-prep demo` runs end to end and leaves loadable training records."""

from pathlib import Path

from PIL import Image

from revise_prep.records import iter_dataset
from revise_prep.records.schema import AR_KEYS

from .conftest import cli


def test_demo(tmp_path):
    proc = cli("demo", "--output-dir", str(tmp_path / "demo"), "--num-workers", "1")
    out = proc.stdout
    assert "random" in out and "list file:" in out and "preview:" in out
    list_file = Path(out.split("list file:")[1].split()[0])
    records = list(iter_dataset(list_file))
    assert len(records) == 3  # five pairs: one too short, one portrait source for a landscape target
    for record in records:
        assert set(AR_KEYS) - {"t5_emb"} <= set(record) and record["text_emb"].ndim == 2
        assert record["vlm_last_hidden_states"].ndim == 3
    preview = Path(out.split("preview:")[1].split()[0])
    assert Image.open(preview).size[0] > 0
