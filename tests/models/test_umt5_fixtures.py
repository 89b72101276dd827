"""UMT5TextEncoder (transformers UMT5EncoderModel) against the original Wan T5's golden embeddings."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from revise_prep.models.base import TextEncoder
from revise_prep.models.umt5 import UMT5TextEncoder
from revise_prep.testing.exact import assert_exact, assert_within



@pytest.fixture(scope="module")
def t5_config(reference):
    return json.loads((reference / "t5" / "config.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def expected(reference):
    return load_file(str(reference / "t5" / "expected_embeddings.safetensors"))


@pytest.fixture(scope="module")
def encoder(reference, t5_config):
    return UMT5TextEncoder.load(
        reference / "t5" / t5_config["checkpoint"],
        tokenizer=reference / "t5" / t5_config["tokenizer_dir"],
        dtype=torch.float32,
        text_len=t5_config["text_len"],
    )


@pytest.fixture(scope="module")
def prompts(t5_config):
    return [rec["prompt_after_newline_replacement"] for rec in t5_config["prompts"]]


def test_config_read_from_checkpoint(encoder, t5_config):
    kw, cfg = t5_config["constructor_kwargs"], encoder.model.config
    assert (cfg.vocab_size, cfg.d_model, cfg.d_ff, cfg.num_layers) == (kw["vocab"], kw["dim"], kw["dim_ffn"], kw["num_layers"])
    assert cfg.num_heads == kw["num_heads"]
    assert cfg.d_kv * cfg.num_heads == kw["dim_attn"]
    assert cfg.relative_attention_num_buckets == kw["num_buckets"]
    assert sum(p.numel() for p in encoder.model.parameters()) == t5_config["parameter_count"]


def test_protocol(encoder):
    assert isinstance(encoder, TextEncoder)
    assert encoder.identifier.startswith("umt5:")
    assert encoder.dtype == torch.float32 and encoder.dim == 64


def test_ids_and_masks_exact(encoder, t5_config, expected, prompts):
    ids, mask = encoder.tokenize(prompts)
    for i, rec in enumerate(t5_config["prompts"]):
        assert_exact("umt5.input_ids", ids[i].tolist(), expected[f"{rec['key']}.input_ids"].tolist(), case=rec["key"])
        assert_exact("umt5.attention_mask", mask[i].tolist(), expected[f"{rec['key']}.attention_mask"].tolist(),
                     case=rec["key"])
        assert_exact("umt5.input_ids", ids[i].tolist(), rec["input_ids"], case=rec["key"])
        assert_exact("umt5.mask_length", int(mask[i].sum()), rec["mask_length"], case=rec["key"])


def test_embeddings_match_original(encoder, t5_config, expected, prompts):
    encoder.batch_size = 1  # as the original pipeline: one prompt at a time
    try:
        out = encoder.encode(prompts)
    finally:
        encoder.batch_size = 8
    for rec, emb in zip(t5_config["prompts"], out):
        ref = expected[rec["key"]]
        assert emb.dtype == torch.float32 and emb.device.type == "cpu"
        assert_exact("umt5.shape", list(emb.shape), rec["embedding_shape"], case=rec["key"])
        assert_within("umt5.embeddings", emb, ref, case=rec["key"])


def test_batched_is_bit_identical_to_one_by_one(encoder, prompts):
    encoder.batch_size = 1
    try:
        single = encoder.encode(prompts)
    finally:
        encoder.batch_size = 8
    for bs in (4, len(prompts)):
        encoder.batch_size = bs
        try:
            batched = encoder.encode(prompts)
        finally:
            encoder.batch_size = 8
        for i, (a, b) in enumerate(zip(single, batched)):
            assert torch.equal(a, b), (bs, i)


def test_duplicates_encoded_once(encoder, prompts):
    rows: list[int] = []
    handle = encoder.model.register_forward_hook(
        lambda mod, args, kwargs, out: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        out = encoder.encode([prompts[0], prompts[1], prompts[0], prompts[0]])
    finally:
        handle.remove()
    assert sum(rows) == 2
    assert torch.equal(out[0], out[2]) and torch.equal(out[0], out[3])
    assert out[0].shape != out[1].shape or not torch.equal(out[0], out[1])


def test_rows_own_their_storage(encoder, prompts):
    out = encoder.encode(prompts[:3])
    for emb in out:  # a pickled view would carry the whole padded batch
        assert emb.untyped_storage().nbytes() == emb.numel() * emb.element_size()


def test_bfloat16_default_is_close(reference, t5_config, expected, prompts):
    enc = UMT5TextEncoder.load(
        reference / "t5" / t5_config["checkpoint"],
        tokenizer=reference / "t5" / t5_config["tokenizer_dir"],
        text_len=t5_config["text_len"],
    )
    assert enc.dtype == torch.bfloat16
    out = enc.encode(prompts)
    for rec, emb in zip(t5_config["prompts"], out):
        assert emb.dtype == torch.bfloat16
        assert_within("umt5.embeddings_bf16", emb, expected[rec["key"]], case=rec["key"])


def test_rejects_single_string(encoder):
    with pytest.raises(TypeError):
        encoder.encode("a prompt")
