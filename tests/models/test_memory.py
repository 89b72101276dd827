"""The GPU memory estimate pre-flight uses: weights from parameter counts, VAE activations by frame area,
and the options that make a step fit a card."""

from __future__ import annotations

import pytest

from revise_prep.models.memory import (UMT5_XXL_PARAMS, step_memory, vae_activation_gib, ways_to_fit,
                                       weights_gib)


def test_weights_and_activations():
    assert weights_gib(2**30, "bfloat16") == 2.0 and weights_gib(2**30, "float32") == 4.0
    assert weights_gib(UMT5_XXL_PARAMS, "bfloat16") == pytest.approx(10.58, abs=0.01)  # the 11.4 GB release file
    assert vae_activation_gib(480, 832) == pytest.approx(6.8)  # the H200 measurement it is scaled from
    assert vae_activation_gib(720, 1280) == pytest.approx(6.8 * 720 * 1280 / (480 * 832))  # by area
    assert vae_activation_gib(480, 832, "bfloat16") == pytest.approx(vae_activation_gib(480, 832) / 2)
    assert vae_activation_gib(720, 1280, tiling=True) == vae_activation_gib(256, 256) < vae_activation_gib(480, 832)
    assert vae_activation_gib(128, 128, tiling=True) == vae_activation_gib(128, 128)  # smaller than a tile


def test_steps_add_up():
    vae, ar, run = (step_memory(s) for s in ("vae", "ar", "run"))
    assert set(run.parts) == set(vae.parts) | set(ar.parts)
    assert run.total > max(vae.total, ar.total)
    assert sum(vae.parts.values()) == pytest.approx(0.47 + 6.8 + 10.58 + 0.5, abs=0.02)
    assert step_memory("vae", t5_on_gpu=False).total < vae.total
    with pytest.raises(ValueError):
        step_memory("decode")


@pytest.mark.parametrize("card", [40, 48, 80, 141])
def test_run_fits_large_cards_as_is(card):
    assert step_memory("run").fits(card) and ways_to_fit("run", card) == []


def test_run_on_a_24_gb_card_names_the_ways_that_fit():
    assert not step_memory("run").fits(24)
    ways = ways_to_fit("run", 24)
    assert ways and ways[0][0].startswith("`vae` then `ar`")  # exact first
    assert all(total <= 24 for _, total in ways)
    assert "--t5-cpu" not in [flags for flags, _ in ways]  # alone it does not fit (24.5 GiB)
    assert ways_to_fit("run", 8) == []  # nothing fits: no false promise


@pytest.mark.parametrize("layout", ["original", "diffusers"])
def test_parameter_counts_come_from_the_checkpoint_headers(tmp_path, layout):
    """``weight_elements`` counts what loading the files finds (both layouts; safetensors and torch zip files)."""
    import torch
    from safetensors.torch import load_file

    from revise_prep.models.identity import weight_elements
    from revise_prep.models.umt5 import umt5_weight_files
    from revise_prep.models.vila.config import read_checkpoint, vila_files
    from revise_prep.models.wan_vae import vae_files
    from revise_prep.testing.tiny_models import make_tiny_wan_release
    from revise_prep.testing.tiny_vila import make_tiny_vila

    def loaded(files):
        total = 0
        for path in files.values():
            if path.suffix == ".safetensors":
                total += sum(t.numel() for t in load_file(path).values())
            elif path.suffix in (".pth", ".bin"):
                total += sum(t.numel() for t in torch.load(path, weights_only=True).values())
        return total

    release = make_tiny_wan_release(tmp_path / "wan", layout)
    vila = make_tiny_vila(tmp_path / "vila")
    for files in (vae_files(release), umt5_weight_files(release), vila_files(read_checkpoint(vila))):
        assert weight_elements(files) == loaded(files) > 0
    assert weight_elements({"x": tmp_path / "missing.pth"}) is None


def test_fit_advice_names_what_fits():
    from revise_prep.models.memory import fit_advice

    assert fit_advice("run", 80, "H100") is None
    line = fit_advice("run", 24, "cuda:0 (RTX)")
    assert line.startswith("`run` needs about 36 GiB") and "cuda:0 (RTX) has 24 GiB" in line
    assert "`vae` then `ar` (two passes)" in line and "--t5-cpu --vae-tiling" in line
    assert "no option" in fit_advice("run", 4, "a small card")


def test_preflight_warns_on_a_card_too_small(tmp_path, monkeypatch, caplog):
    """The pre-flight's estimate uses the checkpoints' own parameter counts (tiny here: only the activations
    weigh) and the card's memory; a card that fits gives no line."""
    import logging
    from types import SimpleNamespace

    import torch

    from revise_prep.pipeline.preflight import check_memory
    from revise_prep.settings import FrameSettings, ModelSettings
    from revise_prep.testing.tiny_models import make_tiny_wan_release

    release = make_tiny_wan_release(tmp_path / "wan", "original")
    card = {"total_memory": 4 * 2**30}
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(name="Tiny GPU", **card))
    models = ModelSettings(ckpt_dir=str(release))
    caplog.set_level(logging.WARNING)
    check_memory({"--device": "cuda:0"}, step="vae", models=models, frames=FrameSettings(buckets=((480, 832), (720, 1280))))
    (line,) = [r.getMessage() for r in caplog.records]
    assert "needs about" in line and "Tiny GPU" in line and "VAE weights 0.0," in line and "umT5 weights 0.0," in line
    assert "VAE activations 15.7" in line  # the largest bucket's area, not the default 480x832
    caplog.clear()
    card["total_memory"] = 80 * 2**30
    check_memory({"--device": "cuda:0"}, step="vae", models=models, frames=FrameSettings())
    check_memory({"--device": "cpu"}, step="vae", models=models, frames=FrameSettings())
    assert not caplog.records
