"""``MultimodalProjector`` against a straightforward implementation written from the spec's words."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file

from revise_prep.models.vila import DownSample, MultimodalProjector, tokens_per_image


def reference_downsample(x: torch.Tensor) -> torch.Tensor:
    """Spec: G[r,c] = X[r*n+c]; odd n -> zero row at the bottom then zero column; M per side; token t = j*M + i
    holds concat(G[2i,2j], G[2i,2j+1], G[2i+1,2j], G[2i+1,2j+1])."""
    num, c = x.shape
    n = math.isqrt(num)
    side = n + n % 2
    grid = torch.zeros(side, side, c, dtype=x.dtype)
    for r in range(n):
        for col in range(n):
            grid[r, col] = x[r * n + col]
    m = side // 2
    out = torch.empty(m * m, 4 * c, dtype=x.dtype)
    for i in range(m):
        for j in range(m):
            out[j * m + i] = torch.cat([grid[2 * i, 2 * j], grid[2 * i, 2 * j + 1],
                                        grid[2 * i + 1, 2 * j], grid[2 * i + 1, 2 * j + 1]])
    return out


def reference_mlp_downsample(x: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
    """DownSample -> LayerNorm(eps 1e-5) -> Linear -> exact (erf) GELU -> Linear, in float64."""
    y = reference_downsample(x.double())
    w = {k: v.double() for k, v in state.items()}
    mu = y.mean(-1, keepdim=True)
    var = ((y - mu) ** 2).mean(-1, keepdim=True)
    y = (y - mu) / torch.sqrt(var + 1e-5) * w["layers.1.weight"] + w["layers.1.bias"]
    y = y @ w["layers.2.weight"].T + w["layers.2.bias"]
    y = 0.5 * y * (1 + torch.erf(y / math.sqrt(2.0)))
    return y @ w["layers.4.weight"].T + w["layers.4.bias"]


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if p.ndim == 1 and p.shape[0] % 2 == 0 else 0.0))


@pytest.mark.parametrize("n", [7, 6, 27, 1, 2])
def test_downsample_matches_spec(n: int) -> None:
    x = torch.randn(3, n * n, 5)
    got = DownSample()(x)
    m = (n + 1) // 2
    assert got.shape == (3, m * m, 20)
    for b in range(3):
        assert torch.equal(got[b], reference_downsample(x[b]))


def test_downsample_rejects_non_square() -> None:
    with pytest.raises(ValueError, match="square"):
        DownSample()(torch.zeros(1, 728, 4))  # "patch" feature on SigLIP: 729 - 1 tokens


@pytest.mark.parametrize("n", [7, 8])
def test_mlp_downsample_matches_spec(n: int) -> None:
    proj = MultimodalProjector("mlp_downsample", 8, 12)
    _randomise(proj)
    assert sorted(proj.state_dict()) == sorted(
        f"layers.{i}.{p}" for i in (1, 2, 4) for p in ("weight", "bias"))
    assert proj.layers[1].eps == 1e-5
    x = torch.randn(2, n * n, 8)
    got = proj(x)
    assert got.shape == (2, ((n + 1) // 2) ** 2, 12)
    for b in range(2):
        torch.testing.assert_close(got[b].double(), reference_mlp_downsample(x[b], proj.state_dict()),
                                   rtol=1e-5, atol=1e-5)


def test_so400m_shape() -> None:
    assert tokens_per_image("mlp_downsample", 729) == 196
    assert MultimodalProjector("mlp_downsample", 16, 8)(torch.zeros(1, 729, 16)).shape == (1, 196, 8)


@pytest.mark.parametrize(
    ("kind", "keys"),
    [("linear", ["layers.bias", "layers.weight"]),
     ("mlp2x_gelu", ["layers.0.bias", "layers.0.weight", "layers.2.bias", "layers.2.weight"]),
     ("mlp3x_gelu", [f"layers.{i}.{p}" for i in (0, 2, 4) for p in ("bias", "weight")]),
     ("identity", [])],
)
def test_other_projector_types(kind: str, keys: list[str]) -> None:
    hidden = 8 if kind == "identity" else 12
    proj = MultimodalProjector(kind, 8, hidden)
    assert sorted(proj.state_dict()) == keys
    assert proj(torch.randn(2, 49, 8)).shape == (2, 49, hidden)
    assert tokens_per_image(kind, 49) == 49


def test_mlpnx_gelu_structure() -> None:
    layers = MultimodalProjector("mlp2x_gelu", 8, 12).layers
    assert isinstance(layers[1], torch.nn.GELU) and layers[1].approximate == "none"


def test_unsupported_type() -> None:
    with pytest.raises(ValueError, match="unsupported mm_projector_type"):
        MultimodalProjector("qformer", 8, 8)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_from_pretrained_roundtrip(tmp_path, fmt: str) -> None:
    src = MultimodalProjector("mlp_downsample", 8, 12)
    _randomise(src, seed=3)
    state = {k: v.contiguous() for k, v in src.state_dict().items()}
    if fmt == "safetensors":
        save_file(state, str(tmp_path / "model.safetensors"))
    else:
        torch.save(state, tmp_path / "pytorch_model.bin")
    loaded = MultimodalProjector.from_pretrained(tmp_path, projector_type="mlp_downsample", mm_hidden_size=8,
                                                 hidden_size=12, dtype=torch.float32)
    x = torch.randn(1, 49, 8)
    assert torch.equal(loaded(x), src(x))
    assert not loaded.training


def test_from_pretrained_missing_weights(tmp_path) -> None:
    with pytest.raises(ValueError, match="no projector weights"):
        MultimodalProjector.from_pretrained(tmp_path, projector_type="linear", mm_hidden_size=8, hidden_size=8)
