"""The VAE variants behind ``WanVAE``: folded padding is bit-identical, the opt-in ones stay within the
float32 bound, the compiled encoder traces without graph breaks, and the flags are scoped and recorded."""

from __future__ import annotations

import pytest
import torch

from revise_prep.models.wan_vae import WanVAE
from revise_prep.models.wan_vae_variants import backend_flags, conv3d_fallback, fold_padding

TOL = 1e-5  # the float32 CPU tolerance of the fixture tests


@pytest.fixture(scope="module")
def checkpoint(reference):
    return reference / "vae" / "tiny_Wan2.1_VAE.pth"


@pytest.fixture(scope="module")
def clip():
    gen = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (1, 3, 9, 32, 48), dtype=torch.uint8, generator=gen)  # 3 chunks: 1 + 4 + 4


@pytest.fixture(scope="module")
def unfolded(checkpoint, clip):
    """diffusers' own forward (F.pad, then an unpadded convolution): what every record was made with so far."""
    return WanVAE.load(checkpoint, fold=False).encode(clip)


def test_folded_padding_is_bit_identical(checkpoint, clip, unfolded):
    vae = WanVAE.load(checkpoint)  # the default folds
    convs = [m for m in vae.model.modules() if type(m).__name__ == "FoldedCausalConv3d"]
    assert convs and all(m._padding[:4] == (0, 0, 0, 0) for m in convs)
    assert any(tuple(m.padding) != (0, 0, 0) for m in convs)
    assert torch.equal(vae.encode(clip), unfolded)
    assert fold_padding(vae.model) == len(convs)  # idempotent: nothing is folded twice
    assert torch.equal(vae.encode(clip), unfolded)


def test_channels_last_within_bound_and_contiguous_latents(checkpoint, clip, unfolded):
    vae = WanVAE.load(checkpoint, channels_last=True)
    weights = [m.weight for m in vae.model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last_3d) for w in weights)
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Layouts(TorchDispatchMode):  # the layout of every 3-D convolution's input, as the kernel gets it
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (torch.ops.aten.conv3d.default, torch.ops.aten.convolution.default) and args[0].dim() == 5:
                seen.append(args[0].is_contiguous(memory_format=torch.channels_last_3d))
            return func(*args, **(kwargs or {}))

    with Layouts():
        latent = vae.encode(clip)
    assert len(seen) > 20 and all(seen)
    assert latent.is_contiguous() and latent.shape == unfolded.shape
    assert (latent - unfolded).abs().max().item() <= TOL
    assert vae.variant_signature() == {"vae_channels_last": True}


@pytest.mark.slow
def test_compiled_encoder_traces_without_breaks(checkpoint, clip, unfolded):
    """dynamo over the chunked encoder and its feature-cache list: one static graph per chunk kind (first,
    second, steady), no graph break. The graphs run as traced (no inductor codegen, which takes minutes
    here; its deviation is in the README), so the latents are the eager ones bit for bit."""
    import torch._dynamo as dynamo
    from torch._dynamo.utils import counters

    graphs = []

    def record(gm, example_inputs):  # a backend that keeps the traced graph as it is
        graphs.append([tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor)])
        assert not any(isinstance(d, torch.SymInt) for t in example_inputs if isinstance(t, torch.Tensor)
                       for d in t.shape), "dynamic shapes"
        return gm.forward

    dynamo.reset()
    counters.clear()
    vae = WanVAE.load(checkpoint, compiled=True, compile_backend=record)
    try:
        first = vae.encode(clip)
        again = vae.encode(clip)  # no new graph: the guards hold
        assert torch.equal(first, unfolded) and torch.equal(again, unfolded)
        assert not counters["graph_break"], dict(counters["graph_break"])
        assert len(graphs) == 3, [g[:1] for g in graphs]
        assert vae.variant_signature() == {"vae_compile": True}
    finally:
        dynamo.reset()


def test_backend_flags_are_scoped():
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    with backend_flags(torch.device("cuda"), benchmark=True, strict_fp32=True):
        assert cudnn.benchmark and not cudnn.allow_tf32 and not matmul.allow_tf32
    assert (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32) == before
    with backend_flags(torch.device("cuda"), benchmark=False):
        assert not cudnn.benchmark and cudnn.allow_tf32 == before[1]  # TF32: PyTorch's default untouched
    with backend_flags(torch.device("cpu"), benchmark=not before[0], strict_fp32=True):
        assert cudnn.benchmark == before[0]  # nothing changes for a CPU model
    assert (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32) == before


@pytest.mark.parametrize(("version", "dtype", "channels_last", "expected"), [
    (91002, torch.bfloat16, False, True),   # cuDNN 9.10.2: bf16 NCDHW leaves cuDNN
    (90800, torch.float16, False, True),    # first affected version
    (91499, torch.bfloat16, False, True),
    (91500, torch.bfloat16, False, False),  # fixed in 9.15
    (90701, torch.bfloat16, False, False),  # before 9.8
    (91002, torch.bfloat16, True, False),   # channels-last keeps cuDNN
    (91002, torch.float32, False, False),   # float32 unaffected
    (None, torch.bfloat16, False, False),   # no cuDNN (CPU)
])
def test_conv3d_fallback_rule(version, dtype, channels_last, expected):
    assert conv3d_fallback(version, dtype, channels_last) is expected


def test_flags_reach_the_model_settings():
    from revise_prep.cli import build_parser
    from revise_prep.cli.options import model_settings

    parser = build_parser()
    base = ["vae", "--input", "x.json", "--output-dir", "o", "--ckpt-dir", "c"]
    default = model_settings(parser.parse_args(base))
    assert (default.vae_channels_last, default.vae_compile, default.strict_fp32, default.cudnn_benchmark) == (
        False, False, False, True)
    chosen = model_settings(parser.parse_args(base + ["--vae-channels-last", "--compile", "--strict-fp32",
                                                      "--no-cudnn-benchmark"]))
    assert (chosen.vae_channels_last, chosen.vae_compile, chosen.strict_fp32, chosen.cudnn_benchmark) == (
        True, True, True, False)
    sub = next(a for a in parser._actions if a.dest == "command").choices["vae"]  # noqa: SLF001
    text = " ".join(sub.format_help().split())
    for flag in ("--vae-channels-last", "--compile"):
        assert f"{flag} opt-in:" in text, flag
