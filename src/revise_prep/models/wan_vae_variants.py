"""Faster forms of the Wan VAE encoder, applied inside the ``WanVAE`` adapter; the pipeline never sees them.

* padding folded: Wan's causal 3-D convolution pads H and W symmetrically with zeros (``F.pad``) and then
  convolves with no padding; the convolution's own zero padding does the same without the padded copy.
  Bit-identical on the CPU (tested); always on.
* channels-last-3d: weights and activations in NDHWC end to end (cuDNN's tensor-core kernels want it; a
  layout conversion per convolution disappears), opt-in: its float32 results differ in the last bits.
* compiled: ``torch.compile`` of the encoder (one graph per chunk shape; recompiles allowed for them).
* the cuDNN/TF32 flags the encoder runs under (``backend_flags``): cudnn.benchmark, and TF32 off for
  ``strict_fp32``; set around each call and restored, so nothing else in the process is affected.

``conv3d_fallback`` is PyTorch's own rule for when a bf16/fp16 3-D convolution leaves cuDNN for the slow
``vol2col`` path (``aten/src/ATen/native/Convolution.cpp``, ``ConvParams::use_cudnn``).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import torch
import torch.nn.functional as F

__all__ = ["fold_padding", "to_channels_last", "compile_encoder", "backend_flags", "conv3d_fallback",
           "cudnn_version", "RECOMPILE_LIMIT"]

log = logging.getLogger(__name__)

#: Compiled graphs the encoder may hold: one per chunk kind (the first 1-frame chunk, the second, the
#: steady 4-frame chunks: the feature cache's shapes differ in each) times the clip shapes of a run.
RECOMPILE_LIMIT = 64


def _causal_conv_class():
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

    return WanCausalConv3d


def _make_folded_class():
    base = _causal_conv_class()

    class FoldedCausalConv3d(base):
        """``WanCausalConv3d`` with its H/W padding done by the convolution; only the causal time padding
        (the cached frames, then zeros) is built by hand. ``channels_last`` keeps the input in NDHWC."""

        channels_last: bool = False

        def forward(self, x, cache_x=None):
            front = self._padding[4]
            if cache_x is not None and front > 0:
                x = torch.cat([cache_x.to(x.device), x], dim=2)
                front -= cache_x.shape[2]
            if front > 0:
                x = F.pad(x, (0, 0, 0, 0, front, 0))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last_3d)
            return self._conv_forward(x, self.weight, self.bias)

    FoldedCausalConv3d.__qualname__ = FoldedCausalConv3d.__name__ = "FoldedCausalConv3d"
    return FoldedCausalConv3d


_FOLDED = None


def fold_padding(model: torch.nn.Module, *, channels_last: bool = False) -> int:
    """Turn every ``WanCausalConv3d`` of ``model`` into one whose convolution pads H and W itself; returns how
    many. Same parameters and state dict; idempotent."""
    global _FOLDED
    if _FOLDED is None:
        _FOLDED = _make_folded_class()
    base = _causal_conv_class()
    count = 0
    for module in model.modules():
        if not isinstance(module, base):
            continue
        if type(module) is not _FOLDED:
            if tuple(module.padding) != (0, 0, 0):
                raise ValueError(f"unexpected WanCausalConv3d padding {module.padding} (diffusers changed?)")
            w_left, w_right, h_top, h_bottom, t_front, t_back = module._padding
            if w_left != w_right or h_top != h_bottom or t_back != 0:
                raise ValueError(f"unexpected WanCausalConv3d padding {module._padding}")
            module.__class__ = _FOLDED
            module.padding = (0, h_top, w_left)
            module._padding = (0, 0, 0, 0, t_front, 0)
        module.channels_last = channels_last
        count += 1
    return count


def to_channels_last(model: torch.nn.Module) -> None:
    """Weights of 3-D convolutions in ``channels_last_3d``, of 2-D ones in ``channels_last``; the causal
    convolutions keep their inputs in NDHWC (see ``fold_padding``)."""
    fold_padding(model, channels_last=True)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
        elif isinstance(module, torch.nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)


def compile_encoder(model: torch.nn.Module, backend: str = "inductor") -> None:
    """``torch.compile`` the VAE's encoder in place (state dict unchanged), with static shapes.

    diffusers' encoder runs chunk by chunk (1 frame, then 4) with a list of cached features: dynamo traces
    the list's mutation without a graph break (checked with ``torch._dynamo.explain`` on diffusers 0.42), and
    guards on the cache's contents, so the first chunk, the second and the steady ones each get a graph.
    ``dynamic=False`` keeps those graphs static (no dynamic-shape fallback after the first recompile), and
    the recompile limit is raised so that every chunk kind of every clip shape stays compiled.
    """
    import torch._dynamo as dynamo

    limit_name = "recompile_limit" if hasattr(dynamo.config, "recompile_limit") else "cache_size_limit"
    if getattr(dynamo.config, limit_name) < RECOMPILE_LIMIT:
        setattr(dynamo.config, limit_name, RECOMPILE_LIMIT)
    model.encoder.compile(backend=backend, dynamic=False)


def cudnn_version() -> int | None:
    """``torch.backends.cudnn.version()`` (e.g. 91002 for 9.10.2), or None without cuDNN."""
    try:
        return torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:  # noqa: BLE001 - a broken cuDNN install: report none
        return None


def conv3d_fallback(version: int | None, dtype: torch.dtype, channels_last: bool) -> bool:
    """Whether PyTorch refuses cuDNN for this VAE's 3-D convolutions and runs its slow ``vol2col`` kernels.

    PyTorch's rule (``ConvParams::use_cudnn``, from 2.9; pytorch#163581, narrowed by #166480): with cuDNN
    9.8.0 to 9.14.x at run time, a bf16/fp16 convolution with a 5-D weight that has any kernel size other
    than 1, in contiguous (NCDHW) memory format, does not use cuDNN. Channels-last-3d inputs/weights keep
    cuDNN. float32 is not affected. (The Wan VAE's 3x3x3 convolutions all match when the rule applies.)
    """
    if version is None or not 90800 <= version < 91500:
        return False
    return dtype in (torch.bfloat16, torch.float16) and not channels_last


@contextmanager
def backend_flags(device: torch.device, *, benchmark: bool = True, strict_fp32: bool = False):
    """Run a block under the encoder's cuDNN flags (CUDA only); the previous values come back afterwards.

    ``benchmark``: cuDNN times its algorithms for each new shape and keeps the fastest. ``strict_fp32``: TF32
    off for convolutions and matmuls (PyTorch's default allows TF32 in cuDNN convolutions, which is what
    the original gets on a GPU, so it stays the default). Uses the ``allow_tf32`` flags, which every torch
    from 2.4 understands.
    """
    if device.type != "cuda":
        yield
        return
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.benchmark = benchmark
    if strict_fp32:
        cudnn.allow_tf32 = False
        matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved
