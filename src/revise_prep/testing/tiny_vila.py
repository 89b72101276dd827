"""Build a tiny random VILA checkpoint (real architectures, real layout) offline, for tests (VILA_SPEC section 9).

Byte-level BPE tokenizer without merges (one token per UTF-8 byte) + the Llama-3 specials and ``[PAD]``, a BOS
post-processor; a 2-layer Llama (hidden 64); a 3-layer SigLIP at 98px/patch 14 (7x7 grid: odd, so
``mlp_downsample`` pads it to 16 tokens); projector weights. Builds in well under a second, ~0.3 MB.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, SiglipVisionConfig, SiglipVisionModel

from revise_prep.models.vila.projector import MultimodalProjector

logger = logging.getLogger(__name__)

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "[PAD]"
SPECIAL_TOKENS = (BOS, EOS, "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", PAD)
LLM_HIDDEN = 64
VISION_HIDDEN = 32
IMAGE_SIZE = 98
PATCH_SIZE = 14
MAX_LENGTH = 2048


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _fill(state: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Deterministic fp16 weights in sorted key order: gains 1+0.1N, biases 0.02N, everything else 0.05N."""
    out: dict[str, torch.Tensor] = {}
    for key in sorted(state):
        shape = state[key].shape
        noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        if len(shape) == 1 and key.endswith("weight"):
            value = 1.0 + 0.1 * noise
        elif key.endswith("bias"):
            value = 0.02 * noise
        else:
            value = 0.05 * noise
        out[key] = value.to(torch.float16).contiguous()
    return out


def build_tokenizer() -> Tokenizer:
    """Byte-level BPE with no merges, the specials after the 256 byte tokens, BOS prepended."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return tok


def _save_tokenizer(tok: Tokenizer, llm_dir: Path) -> None:
    tok.save(str(llm_dir / "tokenizer.json"))
    added = {
        str(tok.token_to_id(t)): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                  "single_word": False, "special": True}
        for t in SPECIAL_TOKENS
    }
    _write_json(llm_dir / "tokenizer_config.json", {
        "added_tokens_decoder": added, "bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
        "clean_up_tokenization_spaces": False, "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": MAX_LENGTH, "padding_side": "right", "tokenizer_class": "PreTrainedTokenizerFast",
    })
    _write_json(llm_dir / "special_tokens_map.json", {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD})


def _llm_config(tok: Tokenizer) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False,
        "attention_dropout": 0.0, "bos_token_id": tok.token_to_id(BOS), "eos_token_id": tok.token_to_id(EOS),
        "head_dim": 16, "hidden_act": "silu", "hidden_size": LLM_HIDDEN, "initializer_range": 0.02,
        "intermediate_size": 128, "max_position_embeddings": 8192, "mlp_bias": False, "num_attention_heads": 4,
        "num_hidden_layers": 2, "num_key_value_heads": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-5,
        "rope_scaling": None, "rope_theta": 500000.0, "tie_word_embeddings": False,
        "tokenizer_model_max_length": MAX_LENGTH, "tokenizer_padding_side": "right", "torch_dtype": "float16",
        "use_cache": True, "vocab_size": tok.get_vocab_size(with_added_tokens=True),
    }


def _vision_config() -> dict[str, Any]:
    return {
        "architectures": ["SiglipVisionModel"], "model_type": "siglip_vision_model", "attention_dropout": 0.0,
        "hidden_act": "gelu_pytorch_tanh", "hidden_size": VISION_HIDDEN, "image_size": IMAGE_SIZE,
        "intermediate_size": 64, "layer_norm_eps": 1e-6, "num_attention_heads": 2, "num_channels": 3,
        "num_hidden_layers": 3, "patch_size": PATCH_SIZE, "torch_dtype": "float16",
    }


def make_tiny_vila(directory: str | Path, seed: int = 0, projector: str = "mlp_downsample") -> Path:
    """Write a loadable tiny VILA checkpoint to ``directory`` (created) and return its path."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    tok = build_tokenizer()
    llm_dir, tower_dir, proj_dir = root / "llm", root / "vision_tower", root / "mm_projector"

    llm_cfg = _llm_config(tok)
    _write_json(llm_dir / "config.json", llm_cfg)
    _save_tokenizer(tok, llm_dir)
    with torch.device("meta"):
        llm_state = LlamaForCausalLM(LlamaConfig(**llm_cfg)).state_dict()
    save_file(_fill(llm_state, generator), str(llm_dir / "model.safetensors"), metadata={"format": "pt"})

    vision_cfg = _vision_config()
    _write_json(tower_dir / "config.json", vision_cfg)
    with torch.device("meta"):
        tower_state = SiglipVisionModel(SiglipVisionConfig(**vision_cfg)).state_dict()  # vision_model.* keys
    save_file(_fill(tower_state, generator), str(tower_dir / "model.safetensors"), metadata={"format": "pt"})
    _write_json(tower_dir / "preprocessor_config.json", {
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
        "processor_class": "SiglipProcessor", "resample": 3, "rescale_factor": 1 / 255,
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    })

    proj_cfg = {"architectures": ["MultimodalProjector"], "model_type": "v2l_projector",
                "mm_projector_type": projector, "torch_dtype": "float16"}
    _write_json(proj_dir / "config.json", proj_cfg)
    proj_state = MultimodalProjector(projector, VISION_HIDDEN, LLM_HIDDEN).state_dict()
    save_file(_fill(proj_state, generator), str(proj_dir / "model.safetensors"), metadata={"format": "pt"})

    _write_json(root / "config.json", {
        "architectures": ["LlavaLlamaModel"], "model_type": "llava_llama",
        "llm_cfg": llm_cfg, "vision_tower_cfg": vision_cfg, "mm_projector_cfg": proj_cfg,
        "resume_path": ".", "hidden_size": LLM_HIDDEN, "mm_hidden_size": VISION_HIDDEN,
        "image_aspect_ratio": "resize", "num_video_frames": 8, "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "cls_patch", "mm_use_im_start_end": False, "mm_use_im_patch_token": False,
        "s2": False, "model_dtype": "torch.float16",
    })
    logger.debug("tiny VILA checkpoint written to %s (seed %d, projector %s)", root, seed, projector)
    return root
