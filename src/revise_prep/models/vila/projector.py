"""VILA's multimodal projector (vision features -> LLM embedding space), re-built as a plain ``nn.Module``.

Same module tree and state-dict keys as upstream ``MultimodalProjector`` so its saved weights load as is.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

logger = logging.getLogger(__name__)

_MLP_GELU = re.compile(r"^mlp(\d+)x_gelu$")


class DownSample(nn.Module):
    """2x2 token merge of a square grid: N tokens x C -> ceil(n/2)^2 tokens x 4C (upstream ``DownSampleBlock``).

    An odd grid gets a zero row (bottom) then a zero column (right); output token ``t = j*M + i`` holds
    ``concat(G[2i,2j], G[2i,2j+1], G[2i+1,2j], G[2i+1,2j+1])`` (column-major, as upstream's view/permute).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, c = x.shape
        n = int(num_tokens**0.5)
        if n * n != num_tokens:
            raise ValueError(f"mlp_downsample needs a square token grid, got {num_tokens} tokens")
        x = x.reshape(b, n, n, c)
        rows, cols = n, n
        if rows % 2 == 1:
            x = torch.cat([x, x.new_zeros((b, 1, cols, c))], dim=1)
            rows += 1
        if cols % 2 == 1:
            x = torch.cat([x, x.new_zeros((b, rows, 1, c))], dim=2)
            cols += 1
        x = x.reshape(b, rows, cols // 2, c * 2).permute(0, 2, 1, 3).contiguous()
        x = x.reshape(b, cols // 2, rows // 2, c * 4)
        return x.reshape(b, -1, c * 4)


def build_layers(projector_type: str, mm_hidden_size: int, hidden_size: int) -> nn.Module:
    """The ``layers`` module of each supported projector type (keys match upstream checkpoints)."""
    if projector_type == "identity":
        return nn.Identity()
    if projector_type == "linear":
        return nn.Linear(mm_hidden_size, hidden_size)
    if projector_type == "mlp_downsample":
        return nn.Sequential(
            DownSample(),
            nn.LayerNorm(mm_hidden_size * 4, eps=1e-5),
            nn.Linear(mm_hidden_size * 4, hidden_size),
            nn.GELU(),
            nn.Linear(hidden_size, hidden_size),
        )
    match = _MLP_GELU.match(projector_type)
    if match:
        depth = int(match.group(1))
        if depth < 1:
            raise ValueError(f"invalid projector type {projector_type!r}")
        modules: list[nn.Module] = [nn.Linear(mm_hidden_size, hidden_size)]
        for _ in range(1, depth):
            modules += [nn.GELU(), nn.Linear(hidden_size, hidden_size)]
        return nn.Sequential(*modules)
    raise ValueError(f"unsupported mm_projector_type {projector_type!r}")


def tokens_per_image(projector_type: str, num_vision_tokens: int) -> int:
    """How many LLM tokens one image becomes after the projector."""
    if projector_type == "mlp_downsample":
        n = int(num_vision_tokens**0.5)
        return ((n + 1) // 2) ** 2
    return num_vision_tokens


class MultimodalProjector(nn.Module):
    """Vision features ``[B, N, C]`` -> LLM embeddings ``[B, N', H]``; ``N' = N`` except ``mlp_downsample``."""

    def __init__(self, projector_type: str, mm_hidden_size: int, hidden_size: int) -> None:
        super().__init__()
        self.projector_type = projector_type
        self.mm_hidden_size = mm_hidden_size
        self.hidden_size = hidden_size
        self.layers = build_layers(projector_type, mm_hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        *,
        projector_type: str,
        mm_hidden_size: int,
        hidden_size: int,
        dtype: torch.dtype = torch.float16,
        device: str | torch.device = "cpu",
    ) -> "MultimodalProjector":
        """Build and load weights from ``model.safetensors`` or ``pytorch_model.bin`` in ``directory`` (strict)."""
        module = cls(projector_type, mm_hidden_size, hidden_size)
        if projector_type != "identity":  # identity has no parameters (and may ship no weights file)
            module.load_state_dict(load_projector_state(Path(directory)), strict=True)
        return module.to(device=device, dtype=dtype).eval()


def load_projector_state(directory: Path) -> dict[str, torch.Tensor]:
    """Weights of ``mm_projector/``; a leading ``mm_projector.`` key prefix is tolerated."""
    st = directory / "model.safetensors"
    pt = directory / "pytorch_model.bin"
    if st.is_file():
        state = load_file(str(st))
    elif pt.is_file():
        state = torch.load(pt, map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"no projector weights (model.safetensors or pytorch_model.bin) in {directory}")
    prefix = "mm_projector."
    if state and all(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state
