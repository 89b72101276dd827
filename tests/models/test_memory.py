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
