"""umT5 text-encoder adapter over transformers' ``UMT5EncoderModel``.

Loads the original Wan ``models_t5_umt5-xxl-enc-bf16.pth`` (keys mapped as SPEC says, config
read off the tensor shapes) or a diffusers/transformers ``text_encoder``, and encodes prompts
as the original does: clean, pad to ``text_len``, run with the mask, keep the unpadded rows.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .base import ModuleAdapter, load_state_dict_file, resolve_dtype, source_id
from .identity import checkpoint_files, files_identity, folder_files, hub_identity
from .layouts import (
    T5_ORIGINAL_FILE,
    T5_ORIGINAL_TOKENIZER,
    T5_SUBFOLDER,
    TOKENIZER_SUBFOLDER,
    T5Checkpoint,
    find_t5,
    hub_download,
)
from .text import clean_text

__all__ = [
    "UMT5TextEncoder",
    "umt5_config_from_original",
    "original_t5_to_transformers",
    "transformers_t5_to_original",
    "umt5_identifier",
    "umt5_identity",
    "umt5_weight_files",
]

log = logging.getLogger(__name__)

# original Wan T5Encoder block key -> transformers UMT5 encoder block key (SPEC §Step 1).
_BLOCK_MAP = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}
_BLOCK_MAP_INV = {v: k for k, v in _BLOCK_MAP.items()}
_ORIG_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_HF_BLOCK = re.compile(r"^encoder\.block\.(\d+)\.(.+)$")


def original_t5_to_transformers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an original Wan ``T5Encoder`` state dict to ``UMT5EncoderModel`` keys (tied embedding under both names)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key == "token_embedding.weight":
            out["shared.weight"] = value
            out["encoder.embed_tokens.weight"] = value
        elif key == "norm.weight":
            out["encoder.final_layer_norm.weight"] = value
        elif (m := _ORIG_BLOCK.match(key)) and m.group(2) in _BLOCK_MAP:
            out[f"encoder.block.{m.group(1)}.{_BLOCK_MAP[m.group(2)]}"] = value
        else:
            raise ValueError(f"unexpected key {key!r} in an original Wan T5 checkpoint")
    return out


def transformers_t5_to_original(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`original_t5_to_transformers` (used to write tiny checkpoints in the original layout)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key in ("shared.weight", "encoder.embed_tokens.weight"):
            out["token_embedding.weight"] = value
        elif key == "encoder.final_layer_norm.weight":
            out["norm.weight"] = value
        elif (m := _HF_BLOCK.match(key)) and m.group(2) in _BLOCK_MAP_INV:
            out[f"blocks.{m.group(1)}.{_BLOCK_MAP_INV[m.group(2)]}"] = value
        else:
            raise ValueError(f"unexpected key {key!r} in a UMT5 encoder state dict")
    return out


def umt5_config_from_original(state_dict: dict[str, torch.Tensor]):
    """``UMT5Config`` read off an original Wan T5 state dict's shapes.

    vocab/d_model from ``token_embedding`` [vocab, d_model]; num_layers from ``blocks.N``; d_ff
    from ``ffn.fc1`` [d_ff, d_model]; num_heads and buckets from the per-layer relative position
    table ``blocks.0.pos_embedding.embedding`` [num_buckets, num_heads] (umT5-xxl: [32, 64]);
    d_kv = rows of ``attn.q`` / num_heads. Max distance 128, gated-GELU, eps 1e-6 as the original.
    """
    from transformers import UMT5Config

    if "token_embedding.weight" not in state_dict:
        raise ValueError("not an original Wan T5 state dict (missing token_embedding.weight)")
    if "pos_embedding.embedding.weight" in state_dict:
        raise ValueError("shared relative position embedding (shared_pos=True) is not a umT5 layout")
    vocab, d_model = state_dict["token_embedding.weight"].shape
    layers = {int(m.group(1)) for k in state_dict if (m := _ORIG_BLOCK.match(k))}
    if not layers or layers != set(range(len(layers))):
        raise ValueError(f"original T5 checkpoint has blocks {sorted(layers)}; expected 0..N-1")
    num_buckets, num_heads = state_dict["blocks.0.pos_embedding.embedding.weight"].shape
    inner = state_dict["blocks.0.attn.q.weight"].shape[0]
    if inner % num_heads:
        raise ValueError(f"attention width {inner} is not divisible by {num_heads} heads")
    return UMT5Config(
        vocab_size=int(vocab),
        d_model=int(d_model),
        d_kv=int(inner // num_heads),
        d_ff=int(state_dict["blocks.0.ffn.fc1.weight"].shape[0]),
        num_layers=len(layers),
        num_heads=int(num_heads),
        relative_attention_num_buckets=int(num_buckets),
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        pad_token_id=0,
        eos_token_id=1,
    )


def _from_original(path: str | Path, dtype: torch.dtype):
    from transformers import UMT5EncoderModel

    original = load_state_dict_file(path)
    config = umt5_config_from_original(original)
    # Cast before renaming so the tied embedding is converted (and held) once.
    weights = original_t5_to_transformers({k: v.to(dtype) for k, v in original.items()})
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    model.load_state_dict(weights, strict=True, assign=True)
    model.encoder.embed_tokens = model.shared  # assign= leaves two Parameters; restore the tie
    meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if meta:
        raise RuntimeError(f"T5 tensors left uninitialised after loading {path}: {meta[:5]}")
    log.info(
        "loaded original Wan T5 %s (d_model=%d, layers=%d, heads=%d)",
        path, config.d_model, config.num_layers, config.num_heads,
    )
    return model


def _from_transformers(location: str, subfolder: str | None, dtype: torch.dtype):
    from transformers import UMT5EncoderModel

    kwargs = {"subfolder": subfolder} if subfolder else {}
    model = UMT5EncoderModel.from_pretrained(location, dtype=dtype, **kwargs)
    log.info("loaded transformers umT5 encoder %s%s", location, f" ({subfolder})" if subfolder else "")
    return model


def _resolve_hub(ckpt: T5Checkpoint) -> T5Checkpoint:
    """Decide a hub id's layout: an original Wan release holds the .pth, otherwise diffusers."""
    repo = ckpt.location
    if not repo.lower().endswith("-diffusers"):
        local = hub_download(repo, T5_ORIGINAL_FILE)
        if local is not None:
            if ckpt.tokenizer is not None:
                return T5Checkpoint("original", local, tokenizer=ckpt.tokenizer)
            return T5Checkpoint("original", local, tokenizer=repo, tokenizer_subfolder=T5_ORIGINAL_TOKENIZER)
    if ckpt.tokenizer is not None:
        return T5Checkpoint("diffusers", repo, T5_SUBFOLDER, ckpt.tokenizer)
    return T5Checkpoint("diffusers", repo, T5_SUBFOLDER, repo, TOKENIZER_SUBFOLDER)


def umt5_identifier(source: str | Path) -> str:
    """How records name the text encoder they were made with (its source, as ``UMT5TextEncoder.identifier``)."""
    return f"umt5:{source_id(source)}"


def umt5_weight_files(source: str | Path, tokenizer: str | Path | None = None) -> dict[str, Path] | None:
    """The umT5 encoder's files by name (not the tokenizer's), found without loading it; None for a hub id."""
    return checkpoint_files(find_t5(source, tokenizer), "encoder/")


def umt5_identity(source: str | Path, tokenizer: str | Path | None = None) -> str:
    """The umT5 checkpoint's identity (``models/identity.py``) without loading it: layout, weights and tokenizer."""
    ckpt = find_t5(source, tokenizer)
    files = checkpoint_files(ckpt, "encoder/")
    if files is None:
        return hub_identity(ckpt.location) + (f"+{ckpt.tokenizer}" if ckpt.tokenizer else "")
    tok = Path(ckpt.tokenizer or "") / (ckpt.tokenizer_subfolder or "")
    if ckpt.tokenizer is not None and tok.is_dir():
        files.update(folder_files(tok, "tokenizer/"))
        return files_identity(ckpt.kind, files)
    return files_identity(ckpt.kind, files) + f"+{ckpt.tokenizer}"  # a hub tokenizer: named by its id


@dataclass(eq=False)
class UMT5TextEncoder(ModuleAdapter):
    """A loaded umT5 encoder plus tokenizer (implements ``TextEncoder``)."""

    model: torch.nn.Module
    tokenizer: object
    identifier: str
    text_len: int = 512
    batch_size: int = 8

    @classmethod
    def load(
        cls,
        source: str | Path,
        *,
        dtype: torch.dtype | str = torch.bfloat16,
        device: str | torch.device = "cpu",
        text_len: int = 512,
        tokenizer: str | Path | None = None,
        batch_size: int = 8,
    ) -> UMT5TextEncoder:
        """Load from a Wan release dir, a ``.pth`` file, a diffusers dir or a hub id (see ``layouts``).

        ``tokenizer`` (folder or hub id) overrides the layout's tokenizer; a lone ``.pth`` needs it
        unless a ``google/umt5-xxl/`` folder sits beside the file.
        """
        from transformers import AutoTokenizer

        if text_len < 1 or batch_size < 1:
            raise ValueError(f"text_len and batch_size must be >= 1 (got {text_len}, {batch_size})")
        torch_dtype = resolve_dtype(dtype)
        ckpt = find_t5(source, tokenizer)
        if ckpt.kind == "hub":
            ckpt = _resolve_hub(ckpt)
        if ckpt.kind == "original":
            model = _from_original(ckpt.location, torch_dtype)
        else:
            model = _from_transformers(ckpt.location, ckpt.subfolder, torch_dtype)
        model.eval().requires_grad_(False)
        model.to(torch.device(device))
        tok_kwargs = {"subfolder": ckpt.tokenizer_subfolder} if ckpt.tokenizer_subfolder else {}
        tok = AutoTokenizer.from_pretrained(ckpt.tokenizer, **tok_kwargs)
        return cls(model=model, tokenizer=tok, identifier=umt5_identifier(source), text_len=text_len, batch_size=batch_size)

    @property
    def dim(self) -> int:
        return int(self.model.config.d_model)

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean and tokenise as the original: ids and attention mask, int64 [N, text_len] each."""
        if isinstance(prompts, str):
            raise TypeError("tokenize expects a list of prompts, not a single string")
        enc = self.tokenizer(
            [clean_text(p) for p in prompts],
            padding="max_length",
            truncation=True,
            max_length=self.text_len,
            add_special_tokens=True,
            return_tensors="pt",
        )
        return enc["input_ids"].long(), enc["attention_mask"].long()

    def token_count(self, prompt: str) -> int:
        """Tokens of the cleaned prompt before truncation (with the eos), to report prompts cut at ``text_len``."""
        return len(self.tokenizer(clean_text(prompt), add_special_tokens=True)["input_ids"])

    @torch.inference_mode()
    def encode(self, prompts: list[str], *, to_cpu: bool = True) -> list[torch.Tensor]:
        """One CPU tensor [L_i, d_model] per prompt (model dtype), L_i = its unpadded token count
        (``to_cpu=False``: left on the model's device, for an engine that copies it back without waiting).

        Identical prompts are encoded once; the rest run in batches of ``batch_size`` padded to
        ``text_len`` (each row is computed independently of the others; see tests for bit-identity).
        """
        if isinstance(prompts, str):
            raise TypeError("encode expects a list of prompts, not a single string")
        unique = list(dict.fromkeys(prompts))
        results: dict[str, torch.Tensor] = {}
        device = self.device
        for start in range(0, len(unique), self.batch_size):
            chunk = unique[start : start + self.batch_size]
            ids, mask = self.tokenize(chunk)
            if device.type == "cuda":
                ids, mask = ids.pin_memory(), mask.pin_memory()
            hidden = self.model(
                input_ids=ids.to(device, non_blocking=True),
                attention_mask=mask.to(device, non_blocking=True),
            ).last_hidden_state
            if to_cpu:
                hidden = hidden.to("cpu")
            for prompt, row, length in zip(chunk, hidden, mask.sum(dim=1).tolist()):
                results[prompt] = row[:length].clone()  # clone: do not pin the whole batch's storage
        return [results[p] for p in prompts]
