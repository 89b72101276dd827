"""Every checkpoint layout loads through the same adapters and gives identical outputs; tiny builders are faithful."""

from __future__ import annotations

import torch
import pytest

from revise_prep.models.base import TextEncoder, VideoEncoder, resolve_dtype
from revise_prep.models.layouts import CheckpointNotFoundError, find_t5, find_vae, is_hub_id
from revise_prep.models.umt5 import (
    UMT5TextEncoder,
    original_t5_to_transformers,
    transformers_t5_to_original,
    umt5_config_from_original,
)
from revise_prep.models.wan_vae import WanVAE
from revise_prep.testing.tiny_models import (
    diffusers_wan_vae_to_original,
    make_tiny_tokenizer,
    make_tiny_umt5,
    make_tiny_wan_release,
    make_tiny_wan_vae,
)

PROMPTS = [
    "Replace the red car with a blue bicycle.",
    "Make it rain   heavily &amp; let puddles form.",
    "Replace the red car with a blue bicycle.",
    "",
    "Ω unknown ✓ symbols and a very long prompt " * 8,
]


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("releases")
    return {layout: make_tiny_wan_release(root / layout, layout) for layout in ("original", "diffusers")}


@pytest.fixture(scope="module")
def clips():
    gen = torch.Generator().manual_seed(7)
    return torch.rand(3, 3, 5, 32, 48, generator=gen) * 2 - 1


# --- detection -------------------------------------------------------------------------------


def test_detection_kinds(releases):
    orig, diff = releases["original"], releases["diffusers"]
    assert find_vae(orig).kind == "original" and find_vae(orig).location.endswith("Wan2.1_VAE.pth")
    assert find_vae(orig / "Wan2.1_VAE.pth").kind == "original"
    assert (find_vae(diff).kind, find_vae(diff).subfolder) == ("diffusers", "vae")
    assert (find_vae(diff / "vae").kind, find_vae(diff / "vae").subfolder) == ("diffusers", None)
    t5 = find_t5(orig)
    assert t5.kind == "original" and t5.tokenizer.endswith("google/umt5-xxl")
    t5 = find_t5(diff)
    assert (t5.kind, t5.subfolder, t5.tokenizer_subfolder) == ("diffusers", "text_encoder", "tokenizer")
    assert find_t5(diff / "text_encoder").tokenizer == str(diff / "tokenizer")
    assert find_vae("Wan-AI/Wan2.1-T2V-1.3B").kind == "hub"
    assert find_t5("Wan-AI/Wan2.1-T2V-1.3B-Diffusers").kind == "hub"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Wan-AI/Wan2.1-T2V-1.3B", True),
        ("Wan-AI/Wan2.1-T2V-14B-Diffusers", True),
        ("/abs/path/ckpt", False),
        ("a/b/c", False),
        ("./x/y", False),
        ("plainname", False),
    ],
)
def test_is_hub_id(text, expected):
    assert is_hub_id(text) is expected


def test_existing_path_is_not_hub_id(tmp_path, monkeypatch):
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert not is_hub_id("org/name")


def test_clear_errors(tmp_path, releases):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(CheckpointNotFoundError, match="does not exist") as err:
        WanVAE.load(missing)
    assert str(missing) in str(err.value)
    with pytest.raises(CheckpointNotFoundError, match="does not exist") as err:
        UMT5TextEncoder.load(missing)
    assert str(missing) in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointNotFoundError, match=r"Wan2\.1_VAE\.pth") as err:
        find_vae(empty)
    assert str(empty) in str(err.value)
    with pytest.raises(CheckpointNotFoundError, match=r"models_t5_umt5-xxl-enc-bf16\.pth"):
        find_t5(empty)
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(CheckpointNotFoundError, match="not a weights file"):
        find_vae(text)
    lone = tmp_path / "lone" / "t5.pth"
    lone.parent.mkdir()
    lone.write_bytes((releases["original"] / "models_t5_umt5-xxl-enc-bf16.pth").read_bytes())
    with pytest.raises(CheckpointNotFoundError, match="tokenizer="):
        find_t5(lone)
    with pytest.raises(CheckpointNotFoundError, match="tokenizer"):
        find_t5(lone, tokenizer=empty)


# --- identical outputs across layouts --------------------------------------------------------


def test_vae_layouts_identical(releases, clips):
    orig, diff = releases["original"], releases["diffusers"]
    sources = [orig, orig / "Wan2.1_VAE.pth", diff, diff / "vae"]
    outputs = [WanVAE.load(s).encode(clips) for s in sources]
    assert outputs[0].shape == (3, 16, 2, 4, 6) and outputs[0].dtype == torch.float32
    assert outputs[0].std() > 0.05  # not degenerate
    for src, out in zip(sources[1:], outputs[1:]):
        assert torch.equal(outputs[0], out), src


def test_t5_layouts_identical(releases):
    orig, diff = releases["original"], releases["diffusers"]
    sources = [
        (orig, None),
        (orig / "models_t5_umt5-xxl-enc-bf16.pth", None),
        (orig / "models_t5_umt5-xxl-enc-bf16.pth", orig / "google" / "umt5-xxl"),
        (diff, None),
        (diff / "text_encoder", None),
        (diff / "text_encoder", diff / "tokenizer"),
    ]
    encoders = [UMT5TextEncoder.load(s, tokenizer=t, dtype="fp32", text_len=16) for s, t in sources]
    ids0, mask0 = encoders[0].tokenize(PROMPTS)
    ref = encoders[0].encode(PROMPTS)
    assert [e.shape[0] for e in ref] == mask0.sum(dim=1).tolist()
    assert ref[-1].shape == (16, 64)  # truncated to text_len, eos kept
    assert ids0[-1, -1].item() == 1 and ref[3].shape == (1, 64)  # empty prompt -> just </s>
    for (src, _), enc in zip(sources[1:], encoders[1:]):
        ids, mask = enc.tokenize(PROMPTS)
        assert torch.equal(ids, ids0) and torch.equal(mask, mask0), src
        for a, b in zip(ref, enc.encode(PROMPTS)):
            assert torch.equal(a, b), src


def test_t5_original_file_is_bf16_and_heads_inferred(tmp_path):
    make_tiny_umt5(tmp_path / "o", "original", d_model=64, num_heads=8, seed=3)
    make_tiny_umt5(tmp_path / "d", "diffusers", d_model=64, num_heads=8, seed=3)
    sd = torch.load(tmp_path / "o" / "models_t5_umt5-xxl-enc-bf16.pth", weights_only=True)
    assert {v.dtype for v in sd.values()} == {torch.bfloat16}
    cfg = umt5_config_from_original(sd)
    assert (cfg.num_heads, cfg.d_kv, cfg.d_model, cfg.num_layers, cfg.relative_attention_num_buckets) == (8, 8, 64, 2, 32)
    a = UMT5TextEncoder.load(tmp_path / "o", dtype="float32", text_len=24)
    b = UMT5TextEncoder.load(tmp_path / "d", dtype="float32", text_len=24)
    assert a.model.config.num_heads == b.model.config.num_heads == 8
    for x, y in zip(a.encode(PROMPTS), b.encode(PROMPTS)):
        assert torch.equal(x, y)


# --- batching ----------------------------------------------------------------------------------


def test_vae_batch_bit_identical(releases, clips):
    vae = WanVAE.load(releases["original"])
    assert isinstance(vae, VideoEncoder)
    together = vae.encode(clips)
    for i in range(clips.shape[0]):
        assert torch.equal(together[i : i + 1], vae.encode(clips[i : i + 1])), i


def test_vae_tiling_flag(releases, clips):
    vae = WanVAE.load(releases["diffusers"], tiling=True)
    assert vae.model.use_tiling
    assert torch.equal(vae.encode(clips[:1]), WanVAE.load(releases["diffusers"]).encode(clips[:1]))  # below tile size


def test_t5_batch_and_dedup_bit_identical(releases):
    enc = UMT5TextEncoder.load(releases["original"], dtype=torch.float32, text_len=32, batch_size=16)
    assert isinstance(enc, TextEncoder)
    batched = enc.encode(PROMPTS)
    singles = [enc.encode([p])[0] for p in PROMPTS]
    for i, (a, b) in enumerate(zip(batched, singles)):
        assert torch.equal(a, b), i
    assert torch.equal(batched[0], batched[2])


# --- tiny builders ------------------------------------------------------------------------------


def test_vae_inverse_key_map_roundtrip(tmp_path):
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    target = make_tiny_wan_vae(tmp_path, "diffusers", seed=5)
    model = AutoencoderKLWan.from_pretrained(target)
    sd = model.state_dict()
    back = convert_wan_vae_to_diffusers(diffusers_wan_vae_to_original(sd))
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_tiny_vae_matches_fixture_key_layout(reference, tmp_path):
    fixture = torch.load(reference / "vae" / "tiny_Wan2.1_VAE.pth", weights_only=True)
    ours = torch.load(make_tiny_wan_vae(tmp_path, "original", base_dim=8), weights_only=True)
    assert set(ours) == set(fixture)
    assert all(ours[k].shape == fixture[k].shape for k in fixture)


def test_t5_key_map_roundtrip_on_fixture(reference):
    fixture = torch.load(reference / "t5" / "tiny_models_t5_umt5-enc.pth", weights_only=True)
    back = transformers_t5_to_original(original_t5_to_transformers(fixture))
    assert set(back) == set(fixture)
    assert all(torch.equal(back[k], fixture[k]) for k in fixture)


def test_tiny_vae_is_seeded(tmp_path):
    a = torch.load(make_tiny_wan_vae(tmp_path / "a", seed=1), weights_only=True)
    b = torch.load(make_tiny_wan_vae(tmp_path / "b", seed=1), weights_only=True)
    c = torch.load(make_tiny_wan_vae(tmp_path / "c", seed=2), weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder.conv1.weight"], c["encoder.conv1.weight"])


def test_tiny_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(make_tiny_tokenizer(tmp_path))
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    ids = tok("Replace the red car.")["input_ids"]
    assert ids[-1] == 1 and 1 not in ids[:-1] and 2 not in ids
    assert 100 < len(tok) <= 512
    again = AutoTokenizer.from_pretrained(make_tiny_tokenizer(tmp_path / "again"))
    assert again.get_vocab() == tok.get_vocab()


# --- dtype names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "dtype"),
    [("float32", torch.float32), ("fp32", torch.float32), ("bfloat16", torch.bfloat16), ("BF16", torch.bfloat16),
     ("float16", torch.float16), ("fp16", torch.float16), ("torch.bfloat16", torch.bfloat16),
     (torch.float16, torch.float16)],
)  # fmt: skip
def test_resolve_dtype(name, dtype):
    assert resolve_dtype(name) is dtype


@pytest.mark.parametrize("bad", ["int8", "float64x", torch.int32])
def test_resolve_dtype_rejects(bad):
    with pytest.raises(ValueError):
        resolve_dtype(bad)


# --- architecture read off the real checkpoints' shapes (meta tensors, no weights) ---------------


def test_real_wan_vae_shapes_give_real_config():
    from diffusers import AutoencoderKLWan

    from revise_prep.models.wan_vae import vae_config_from_original

    with torch.device("meta"):
        real = AutoencoderKLWan()  # the published Wan2.1 VAE: base_dim 96
    cfg = vae_config_from_original(diffusers_wan_vae_to_original(real.state_dict()))
    assert cfg["base_dim"] == 96 and cfg["z_dim"] == 16
    assert cfg["dim_mult"] == [1, 2, 4, 4] and cfg["num_res_blocks"] == 2
    assert cfg["temperal_downsample"] == [False, True, True]


def test_real_umt5_xxl_shapes_give_real_config():
    from transformers import UMT5Config, UMT5EncoderModel

    xxl = UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                     relative_attention_num_buckets=32, feed_forward_proj="gated-gelu")  # fmt: skip
    with torch.device("meta"):
        model = UMT5EncoderModel(xxl)
    cfg = umt5_config_from_original(transformers_t5_to_original(model.state_dict()))
    got = (cfg.vocab_size, cfg.d_model, cfg.d_kv, cfg.d_ff, cfg.num_layers, cfg.num_heads, cfg.relative_attention_num_buckets)
    assert got == (256384, 4096, 64, 10240, 24, 64, 32)
    assert cfg.relative_attention_max_distance == 128 and cfg.is_gated_act and cfg.dense_act_fn == "gelu_new"


# --- what the loaders will read, checked without loading ---------------------------------------------


def test_weights_problems_without_loading(tmp_path, releases):
    from revise_prep.models.layouts import t5_problems, vae_problems, weights_problem

    orig, diff = releases["original"], releases["diffusers"]
    assert weights_problem(orig / "Wan2.1_VAE.pth") is None
    assert weights_problem(diff / "vae" / "diffusion_pytorch_model.safetensors") is None
    assert vae_problems(find_vae(diff)) == [] and t5_problems(find_t5(orig)) == t5_problems(find_t5(diff)) == []
    data = (orig / "Wan2.1_VAE.pth").read_bytes()
    cases = {"empty.pth": (b"", "empty file"), "cut.pth": (data[: len(data) // 2], "truncated or damaged"),
             "page.pth": (b"<!DOCTYPE html><html>" * 10, "not a torch checkpoint"),
             "cut.safetensors": ((diff / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()[:-10],
                                 "truncated")}
    for name, (content, why) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert why in weights_problem(tmp_path / name), name
    torch.save({"x": torch.zeros(1)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert weights_problem(tmp_path / "legacy.pth") is None
    (diff / "vae" / "config.json").rename(tmp_path / "keep.json")  # a folder whose config is another model's
    (diff / "vae" / "config.json").write_text('{"architectures": ["LlavaLlamaModel"], "model_type": "llava_llama"}')
    try:
        [problem] = vae_problems(find_vae(diff))
        assert "LlavaLlamaModel" in problem and "VILA checkpoint" in problem and "not a Wan VAE" in problem
    finally:
        (tmp_path / "keep.json").replace(diff / "vae" / "config.json")


def test_a_damaged_checkpoint_that_reaches_the_loader_is_one_line(tmp_path):
    """Past the pre-flight (a library caller), torch.load's own errors still become one InputError line."""
    from revise_prep.errors import InputError, loading

    bad = tmp_path / "Wan2.1_VAE.pth"
    bad.write_bytes(b"<html>rate limited</html>" * 8)
    with pytest.raises(InputError, match="cannot load the VAE from .*UnpicklingError"):
        with loading("the VAE", bad):
            WanVAE.load(bad)


def test_hub_is_not_asked_offline(monkeypatch):
    from revise_prep.models import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    answer = hub.ask("no-such-org-revise-prep/no-such-repo")
    assert not answer.found and "HF_HUB_OFFLINE is set (the hub was not asked)" in answer.detail
