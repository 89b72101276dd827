"""The one rule for golden comparisons: deterministic data bit for bit, float tensors within a measured number
of the dtype's spacings at the tensor's scale, whatever the CPU's kernels (``ATEN_CPU_CAPABILITY``).

Use it for every comparison against ``../shared/fixtures/reference`` (or any stored golden value):

* ``assert_exact(what, got, expected)`` where the computation is integer or otherwise deterministic: frame
  indices, decoded pixels, crop/resize to uint8 and its float32 normalisation, token ids and masks, record keys
  and shapes, pixel tensors built from those. Tensors (same dtype and shape, ``torch.equal``), NumPy arrays,
  lists and scalars.
* ``assert_within(what, got, expected)`` for float results of kernels that round differently per CPU (matmul,
  convolution, attention): ``max |got - expected|`` divided by ``spacing(dtype, max |expected|)`` must not
  exceed ``BOUNDS[what].spacings``. ``what`` names the comparison; its dtype, bound and the measured worst case
  live in ``BOUNDS`` below and nowhere else. A new float comparison gets a new entry, chosen from measurement
  under every capability this CPU supports (``bench/exactness.py`` prints the table) and stated with it.

Two of our own code paths on one machine (``run`` vs ``vae`` + ``ar``, engine vs engine, rotated vs upright,
batched vs one at a time) are not golden comparisons: they stay ``torch.equal``.

With ``REVISE_PREP_EXACTNESS_LOG=FILE`` every call appends one JSON line (comparison, case, deviation in
spacings, max |delta|, scale, dtype, the capability torch runs with); ``bench/exactness.py`` and
``tests/test_exactness.py`` read it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["BOUNDS", "Bound", "CAPABILITIES", "assert_exact", "assert_within", "capability", "deviation",
           "emulate", "spacing"]

log = logging.getLogger(__name__)
LOG_ENV = "REVISE_PREP_EXACTNESS_LOG"
CAPABILITIES = ["default", "avx2", "avx512"]  # ATEN_CPU_CAPABILITY values, lowest first
# What a host of that class also gets from oneDNN (convolutions) and MKL (float32 matmul): capped alike.
_LIBRARY_ISA = {"default": {"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
                "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}


@dataclass(frozen=True)
class Bound:
    """A float golden comparison: spacings of ``dtype`` at max |expected| allowed, and what was measured."""

    dtype: torch.dtype
    spacings: float
    measured: str  # worst case seen, per capability, when the bound was chosen


# Chosen from bench/exactness.py (torch 2.13.0+cpu, transformers 5.25, diffusers 0.42; AMD EPYC with AVX-512):
# worst deviation emulating default / avx2 / avx512 hosts (``emulate``), then a bound about twice the worst.
BOUNDS: dict[str, Bound] = {
    # conv3d kernels: bit-exact with AVX-512 (the fixtures' machine), a few spacings elsewhere
    "vae.latents": Bound(torch.float32, 32, "6 cases + 1 batched, scale 2-4: 16.8 / 13.5 / 0 spacings (4.0e-6 abs)"),
    # transformers' umT5 vs the original T5 code: a different summation order, on every capability
    "umt5.embeddings": Bound(torch.float32, 32, "13 prompts, scale 2-4: 11.8 / 13.5 / 12.5 spacings (3.2e-6 abs)"),
    # the default bf16 run against the float32 golden file: bf16 rounding inside 2 layers
    "umt5.embeddings_bf16": Bound(torch.bfloat16, 16, "13 prompts: 6.2 / 6.2 / 6.2 bf16 spacings (0.096 abs)"),
    # fp16 SigLIP tower + projector
    "vila.image_features": Bound(torch.float16, 4, "11 cases: 1.5 / 0 / 0 spacings"),
    # fp16 VILA LLM: the AVX2 and default kernels round some sums differently (e.g. -0.8130 vs -0.8135)
    "vila.hidden_states": Bound(torch.float16, 4,
                                "13 cases + 6 other paths, scale 4-8: 2 / 1 / 0 spacings (0.0078 abs)"),
    # installed Pillow's bicubic resize where its pixels differ from Pillow 10.4's (p12's portrait)
    "vila.hidden_states_native_pillow": Bound(torch.float16, 16, "p12: 8.4 / 8.9 / 8.9 spacings (0.035 abs)"),
}


def capability() -> str:
    """The CPU kernels torch dispatches to (``DEFAULT``, ``AVX2``, ``AVX512``; ``ATEN_CPU_CAPABILITY`` lowers it)."""
    return torch.backends.cpu.get_cpu_capability()


def emulate(cap: str) -> dict[str, str]:
    """Environment that makes a process on this CPU compute as a ``cap`` host would: torch's own kernels
    (``ATEN_CPU_CAPABILITY``) and the oneDNN / MKL code paths (their ISA caps)."""
    return {"ATEN_CPU_CAPABILITY": cap, **_LIBRARY_ISA.get(cap, {})}


def spacing(dtype: torch.dtype, scale: float) -> float:
    """Distance between adjacent ``dtype`` numbers at magnitude ``scale`` (one ulp of the tensor's largest value)."""
    info = torch.finfo(dtype)
    if scale < info.smallest_normal:
        return info.smallest_normal * info.eps
    return 2.0 ** math.floor(math.log2(scale)) * info.eps


def deviation(got: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> tuple[float, float, float]:
    """(spacings, max |got - expected|, max |expected|) in float64; NaN or Inf where expected has none -> inf."""
    g, e = got.detach().cpu().double(), expected.detach().cpu().double()
    delta = (g - e).abs()
    worst = float(delta.max()) if delta.numel() else 0.0
    if math.isnan(worst) or math.isinf(worst):
        worst = math.inf
    scale = float(e.abs().max()) if e.numel() else 0.0
    return worst / spacing(dtype, scale), worst, scale


def _record(what: str, case: Any, **facts: Any) -> None:
    entry = {"what": what, "case": None if case is None else str(case), "capability": capability(), **facts}
    log.info("golden %s", entry)
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def _label(what: str, case: Any) -> str:
    return what if case is None else f"{what} [{case}]"


def assert_within(what: str, got: torch.Tensor, expected: torch.Tensor, *, case: Any = None) -> float:
    """Assert ``got`` is within ``BOUNDS[what]`` spacings of the golden ``expected``; returns the spacings."""
    if what not in BOUNDS:
        raise KeyError(f"no bound for {what!r}: add one to revise_prep.testing.exact.BOUNDS, chosen from measurement")
    bound = BOUNDS[what]
    label = _label(what, case)
    assert tuple(got.shape) == tuple(expected.shape), f"{label}: shape {tuple(got.shape)} != {tuple(expected.shape)}"
    spacings, worst, scale = deviation(got, expected, bound.dtype)
    _record(what, case, spacings=spacings, max_abs=worst, scale=scale, dtype=str(bound.dtype).replace("torch.", ""),
            bound=bound.spacings)
    assert spacings <= bound.spacings, (
        f"{label}: max |delta| {worst:.6g} = {spacings:.3g} {bound.dtype} spacings at scale {scale:.6g} "
        f"(bound {bound.spacings}; capability {capability()})")
    return spacings


def assert_exact(what: str, got: Any, expected: Any, *, case: Any = None) -> None:
    """Assert bit-exact equality: tensors and arrays (dtype, shape, values), anything else ``==``."""
    label = _label(what, case)
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor), f"{label}: {type(got).__name__} is not a tensor"
        assert got.dtype == expected.dtype, f"{label}: dtype {got.dtype} != {expected.dtype}"
        assert tuple(got.shape) == tuple(expected.shape), f"{label}: shape {tuple(got.shape)} != {expected.shape}"
        same = torch.equal(got.cpu(), expected.cpu())
        if not same and got.dtype != torch.bool:
            detail = f"; max |delta| {float((got.double() - expected.double()).abs().max()):.6g}"
        else:
            detail = ""
    elif isinstance(expected, np.ndarray):
        got = np.asarray(got)
        assert got.dtype == expected.dtype, f"{label}: dtype {got.dtype} != {expected.dtype}"
        assert got.shape == expected.shape, f"{label}: shape {got.shape} != {expected.shape}"
        same = bool(np.array_equal(got, expected))
        worst = 0.0 if same else np.abs(got.astype(np.float64) - expected.astype(np.float64)).max()
        detail = "" if same else f"; max |delta| {worst:.6g}"
    else:
        same = got == expected
        detail = "" if same else f": {got!r} != {expected!r}"
    _record(what, case, spacings=0.0 if same else math.inf, exact=True)
    assert same, f"{label}: not bit-exact{detail} (capability {capability()})"
