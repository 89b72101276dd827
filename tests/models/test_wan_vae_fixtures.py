"""WanVAE (diffusers AutoencoderKLWan) against the original Wan VAE's golden latents."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from revise_prep.models.base import VideoEncoder
from revise_prep.models.wan_vae import WanVAE
from revise_prep.testing.exact import assert_exact, assert_within

# the golden cases of vae/config.json, one test each (the capability check in tests/test_exactness.py picks one)
CASE_IDS = ["p00", "p11", "p02", "p09", "rand_t13_40x56", "rand_t1_24x32"]


@pytest.fixture(scope="module")
def vae_config(reference):
    return json.loads((reference / "vae" / "config.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def vae(reference):
    return WanVAE.load(reference / "vae" / "tiny_Wan2.1_VAE.pth")


def _case_input(reference, case) -> torch.Tensor:
    if case["input_kind"] == "frames":
        frames = load_file(str(reference / case["input"]))["frames"]  # [T,3,H,W]
        return frames.transpose(0, 1).unsqueeze(0)
    file, key = case["input"].split(":")
    return load_file(str(reference / file))[key]


def test_architecture_read_from_checkpoint(vae, vae_config):
    kwargs = vae_config["diffusers_equivalent"]["kwargs"]
    cfg = vae.model.config
    for name in ("base_dim", "z_dim", "dim_mult", "num_res_blocks", "attn_scales", "temperal_downsample"):
        assert (list(cfg[name]) if isinstance(cfg[name], (list, tuple)) else cfg[name]) == kwargs[name], name
    assert sum(p.numel() for p in vae.model.parameters()) == vae_config["parameter_count"]


def test_normalisation_constants_are_wans(vae, vae_config):
    norm = vae_config["latent_normalisation"]
    assert list(vae.model.config.latents_mean) == norm["mean"]
    assert list(vae.model.config.latents_std) == norm["std"]


def test_protocol_and_identity(vae, reference):
    assert isinstance(vae, VideoEncoder)
    assert vae.identifier.startswith("wan2.1-vae:") and "tiny_Wan2.1_VAE.pth" in vae.identifier
    assert vae.dtype == torch.float32 and vae.device == torch.device("cpu")


def test_every_case_is_tested(vae_config):
    assert [c["id"] for c in vae_config["cases"]] == CASE_IDS


@pytest.fixture(scope="module")
def expected_latents(reference):
    return load_file(str(reference / "vae" / "expected_latents.safetensors"))


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_latents_match_original(vae, vae_config, reference, expected_latents, case_id):
    case = next(c for c in vae_config["cases"] if c["id"] == case_id)
    x = _case_input(reference, case)
    assert list(x.shape) == case["input_shape_bcthw"], case_id
    latent = vae.encode(x)
    assert latent.dtype == torch.float32 and latent.device.type == "cpu"
    assert_exact("vae.shape", list(latent.shape), [1, *case["latent_shape_cthw"]], case=case_id)
    assert_within("vae.latents", latent[0], expected_latents[case_id], case=case_id)


def test_batch_equals_one_at_a_time(vae, vae_config, reference, expected_latents):
    x = _case_input(reference, vae_config["cases"][0])
    batch = torch.cat([torch.flip(x, dims=[-1]), x, -x])
    together = vae.encode(batch)
    assert together.shape[0] == 3
    for i in range(3):
        assert torch.equal(together[i : i + 1], vae.encode(batch[i : i + 1])), i
    assert_within("vae.latents", together[1], expected_latents[CASE_IDS[0]], case=f"{CASE_IDS[0]} in a batch of 3")


def test_rejects_wrong_shape(vae):
    with pytest.raises(ValueError, match=r"\[B,3,T,H,W\]"):
        vae.encode(torch.zeros(3, 5, 16, 16))
