"""Tiny random-weight checkpoints of the real architectures, in the real on-disk layouts.

For tests, the demo and benchmarks: a Wan2.1 VAE (diffusers ``AutoencoderKLWan``, base_dim 8,
~0.9M parameters), a umT5 encoder (``UMT5EncoderModel``, d_model 64) and a Unigram tokenizer
trained offline on a built-in corpus. Weights are seeded (a private ``torch.Generator``; the
global RNG is untouched), so the same arguments always give the same files.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Literal

import torch

from ..models.layouts import (
    T5_ORIGINAL_FILE,
    T5_ORIGINAL_TOKENIZER,
    T5_SUBFOLDER,
    TOKENIZER_SUBFOLDER,
    VAE_ORIGINAL_FILE,
    VAE_SUBFOLDER,
)

__all__ = [
    "make_tiny_wan_vae",
    "make_tiny_tokenizer",
    "make_tiny_umt5",
    "make_tiny_wan_release",
    "diffusers_wan_vae_to_original",
    "TOKENIZER_CORPUS",
]

log = logging.getLogger(__name__)

Layout = Literal["original", "diffusers"]

# ---------------------------------------------------------------------------------------------
# Wan VAE


_RESNET = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2", "norm2.gamma": "residual.3.gamma",
           "conv2": "residual.6", "conv_shortcut": "shortcut"}  # fmt: skip


def _resnet_part(rest: str) -> str:
    """diffusers residual-block parameter name -> original (``conv1.weight`` -> ``residual.2.weight``)."""
    for new, old in _RESNET.items():
        if rest == new or rest.startswith(new + "."):
            return old + rest[len(new):]
    raise ValueError(f"unknown residual-block parameter {rest!r}")


def diffusers_wan_vae_to_original(state_dict: dict[str, torch.Tensor], num_res_blocks: int = 2) -> dict[str, torch.Tensor]:
    """Inverse of diffusers' ``convert_wan_vae_to_diffusers``: ``AutoencoderKLWan`` keys -> original Wan keys."""
    out: dict[str, torch.Tensor] = {}
    per_stage = num_res_blocks + 2  # decoder: (num_res_blocks + 1) residual blocks + one resample
    fixed = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
    for key, value in state_dict.items():
        side, _, rest = key.partition(".")
        if side in fixed:
            new = f"{fixed[side]}.{rest}"
        elif rest.startswith("conv_in."):
            new = f"{side}.conv1.{rest[len('conv_in.'):]}"
        elif rest.startswith("norm_out."):
            new = f"{side}.head.0.{rest[len('norm_out.'):]}"
        elif rest.startswith("conv_out."):
            new = f"{side}.head.2.{rest[len('conv_out.'):]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)$", rest):
            new = f"{side}.middle.{2 * int(m.group(1))}.{_resnet_part(m.group(2))}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.+)$", rest):
            new = f"{side}.middle.1.{m.group(1)}"
        elif m := re.match(r"down_blocks\.(\d+)\.(.+)$", rest):
            idx, part = m.groups()
            is_resample = part.startswith(("resample.", "time_conv."))
            new = f"{side}.downsamples.{idx}.{part if is_resample else _resnet_part(part)}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", rest):
            stage, res, part = int(m.group(1)), int(m.group(2)), m.group(3)
            new = f"{side}.upsamples.{stage * per_stage + res}.{_resnet_part(part)}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.+)$", rest):
            stage, part = int(m.group(1)), m.group(2)
            new = f"{side}.upsamples.{stage * per_stage + per_stage - 1}.{part}"
        else:
            raise ValueError(f"no original Wan name for diffusers VAE key {key!r}")
        out[new] = value
    return out


def _init_vae_(model: torch.nn.Module, seed: int) -> None:
    """Seeded init like the fixture's: gamma ~ 1+0.1N, bias ~ 0.05N, conv weight ~ N/sqrt(fan_in)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("gamma"):
                p.copy_(1 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.05 * noise)
            else:
                fan_in = math.prod(p.shape[1:]) if p.dim() > 1 else 1
                p.copy_(noise / math.sqrt(fan_in))


def _tiny_vae(base_dim: int, seed: int):
    from diffusers import AutoencoderKLWan

    model = AutoencoderKLWan(
        base_dim=base_dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
        temperal_downsample=[False, True, True], dropout=0.0,
    )  # fmt: skip
    _init_vae_(model, seed)
    return model.eval()


def make_tiny_wan_vae(
    directory: str | Path, layout: Layout = "original", *, base_dim: int = 8, seed: int = 0
) -> Path:
    """Write a tiny random Wan2.1 VAE into ``directory``; returns the ``.pth`` file or the ``vae/`` folder.

    "original": ``Wan2.1_VAE.pth`` with the original Wan key names (float32 state dict);
    "diffusers": ``vae/`` written by ``save_pretrained``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = _tiny_vae(base_dim, seed)
    if layout == "original":
        target = directory / VAE_ORIGINAL_FILE
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        torch.save(diffusers_wan_vae_to_original(sd), target)
    elif layout == "diffusers":
        target = directory / VAE_SUBFOLDER
        model.save_pretrained(target)
    else:
        raise ValueError(f"layout must be 'original' or 'diffusers' (got {layout!r})")
    log.info("wrote tiny Wan VAE (%s, base_dim=%d, seed=%d) to %s", layout, base_dim, seed, target)
    return target


# ---------------------------------------------------------------------------------------------
# Tokenizer

TOKENIZER_CORPUS: tuple[str, ...] = (
    "Replace the red car with a blue bicycle and keep the background unchanged.",
    "What if the cold air meets the wet ground and causes moisture to condense into a low mist?",
    "Turn the table into marble and add a vase of flowers.",
    "Make the dog's fur look wet, as if it just came out of the rain.",
    "Add falling snow to the whole scene, slowly.",
    "Change the sky to a warm orange sunset and make the city lights glow.",
    "Remove the person walking on the left side of the street.",
    "Make the river freeze and show ice forming along the banks.",
    "Show what happens when the candle burns down to the end.",
    "Turn the daytime scene into night with a full moon over the lake.",
    "Let the flowers bloom as the sun rises over the green hills.",
    "Replace the wooden boat with a large white sailing ship.",
    "Make the cat jump onto the kitchen table and knock over a cup.",
    "What would the bridge look like after a hundred years without repair?",
    "Paint the old house bright yellow and add a small garden in front.",
    "Make it rain heavily and let puddles form on the road.",
    "The glass falls from the table and breaks into many pieces.",
    "Add a rainbow above the waterfall after the storm passes.",
    "Change the season from summer to autumn with red and brown leaves.",
    "Make the ice cream melt in the hot afternoon sun.",
    "Show the bread rising in the oven until it turns golden brown.",
    "Let the balloon float up into the clear blue sky.",
    "Replace the horse with a zebra running across the field.",
    "Make the children build a snowman in the park.",
    "If the light is red, the car stops at the crossing.",
    "Turn the cafe sign into a neon sign that says OPEN.",
    "Make the sky glow like the first sunrise over the full moon.",
    "Grow a tall tree in the middle of the empty square.",
    "Show the shadows getting longer as evening comes.",
    "Fill the empty glass with cold water and ice cubes.",
)  # fmt: skip


def _unigram_vocab(corpus: tuple[str, ...], vocab_size: int) -> list[tuple[str, float]]:
    """Deterministic Unigram pieces with log-probability scores from counts over ``corpus``.

    Every character seen (so only unseen characters map to ``<unk>``), then whole words and
    frequent word substrings (with and without the leading "▁"), most frequent first.
    (tokenizers' UnigramTrainer is not deterministic from run to run, hence this.)
    """
    import unicodedata
    from collections import Counter

    words = Counter()
    for line in corpus:
        for word in unicodedata.normalize("NFKC", line).split():
            words["▁" + word] += 1
    chars, pieces = Counter(), Counter()
    for word, n in words.items():
        for ch in word:
            chars[ch] += n
        pieces[word] += n
        for size in range(2, min(len(word), 8) + 1):
            for start in range(len(word) - size + 1):
                pieces[word[start : start + size]] += n
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    total = sum(chars.values()) + sum(pieces.values())
    vocab = [(ch, math.log(n / total)) for ch, n in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))]
    budget = max(0, vocab_size - len(specials) - len(vocab))
    ranked = sorted(
        ((p, n) for p, n in pieces.items() if n >= 2 and len(p) > 1),
        key=lambda kv: (-kv[1] * len(kv[0]), kv[0]),
    )
    vocab += [(p, math.log(n / total)) for p, n in ranked[:budget]]
    return specials + vocab


def make_tiny_tokenizer(directory: str | Path, *, vocab_size: int = 400) -> Path:
    """Build a small SentencePiece-style Unigram tokenizer offline and save it for ``AutoTokenizer``.

    Like umT5's: NFKC + collapse of space runs, Metaspace pre-tokenizer, "$A </s>" post-processor,
    ``<pad>``=0, ``</s>``=1, ``<unk>``=2; saved as ``tokenizer.json`` + a ``PreTrainedTokenizerFast``
    config. Pieces come from the built-in corpus; the result is the same on every run.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.Unigram(_unigram_vocab(TOKENIZER_CORPUS, vocab_size), unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens(["<pad>", "</s>", "<unk>"])
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    for token, expected in (("<pad>", 0), ("</s>", 1), ("<unk>", 2)):
        if tok.token_to_id(token) != expected:
            raise RuntimeError(f"tiny tokenizer: {token} got id {tok.token_to_id(token)}, expected {expected}")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        model_max_length=512, padding_side="right", truncation_side="right",
        clean_up_tokenization_spaces=False,
    )  # fmt: skip
    fast.save_pretrained(directory)
    log.info("wrote tiny tokenizer (%d pieces) to %s", tok.get_vocab_size(), directory)
    return directory


# ---------------------------------------------------------------------------------------------
# umT5 encoder


def _tiny_umt5(vocab_size: int, d_model: int, num_heads: int, d_ff: int, num_layers: int, num_buckets: int, seed: int):
    from transformers import UMT5Config, UMT5EncoderModel

    if d_model % num_heads:
        raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
    config = UMT5Config(
        vocab_size=vocab_size, d_model=d_model, d_kv=d_model // num_heads, d_ff=d_ff, num_layers=num_layers,
        num_heads=num_heads, relative_attention_num_buckets=num_buckets, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    model = UMT5EncoderModel(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # the tied embedding appears once
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "layer_norm" in name:
                value = 1 + 0.1 * noise
            elif name == "shared.weight":
                value = noise
            elif "relative_attention_bias" in name:
                value = 0.5 * noise
            else:
                value = noise / math.sqrt(p.shape[1])
            # bf16-representable values: the original layout stores bf16, and every layout must
            # hold exactly the same weights.
            p.copy_(value.to(torch.bfloat16).to(torch.float32))
    return model


def make_tiny_umt5(
    directory: str | Path,
    layout: Layout = "original",
    *,
    d_model: int = 64,
    num_heads: int = 4,
    d_ff: int = 160,
    num_layers: int = 2,
    num_buckets: int = 32,
    seed: int = 0,
) -> Path:
    """Write a tiny random umT5 encoder + tokenizer into ``directory`` (returned).

    "original": ``models_t5_umt5-xxl-enc-bf16.pth`` (original Wan key names, bfloat16, as the real
    file) and the tokenizer in ``google/umt5-xxl/``; "diffusers": ``text_encoder/``
    (``save_pretrained``, bfloat16) and ``tokenizer/``. The vocabulary is the tokenizer's size.
    """
    directory = Path(directory)
    if layout not in ("original", "diffusers"):
        raise ValueError(f"layout must be 'original' or 'diffusers' (got {layout!r})")
    tok_dir = directory / (T5_ORIGINAL_TOKENIZER if layout == "original" else TOKENIZER_SUBFOLDER)
    make_tiny_tokenizer(tok_dir)
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(tok_dir))
    model = _tiny_umt5(vocab, d_model, num_heads, d_ff, num_layers, num_buckets, seed)
    if layout == "original":
        from ..models.umt5 import transformers_t5_to_original

        sd = {k: v.detach().to(torch.bfloat16).clone() for k, v in model.state_dict().items()}
        torch.save(transformers_t5_to_original(sd), directory / T5_ORIGINAL_FILE)
    else:
        model.to(torch.bfloat16).save_pretrained(directory / T5_SUBFOLDER)
    log.info("wrote tiny umT5 (%s, d_model=%d, heads=%d, seed=%d) to %s", layout, d_model, num_heads, seed, directory)
    return directory


def make_tiny_wan_release(directory: str | Path, layout: Layout = "original", *, seed: int = 0) -> Path:
    """A whole tiny Wan2.1 release (VAE + umT5 + tokenizer) in the original or the diffusers layout."""
    directory = Path(directory)
    make_tiny_wan_vae(directory, layout, seed=seed)
    make_tiny_umt5(directory, layout, seed=seed)
    return directory
