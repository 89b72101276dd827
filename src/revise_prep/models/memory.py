"""Estimated peak GPU memory of a step, and the ways to make it fit a card (for pre-flight).

Pure arithmetic on sizes: weights from parameter counts, the VAE encoder's activations scaled by the
frame area from the peaks measured on an H200 (issue 18: 81x480x832, random full-size models, PyTorch 2.11,
peaks of 18.1 / 14.7 GiB with umT5-xxl and both VAEs resident, i.e. ~6.8 GiB of float32 and ~3.4 GiB of
bfloat16 activations; ``bench/gpu.py`` prints this estimate beside the measured peaks). The encoder works
on chunks of 4 frames, so the frame count barely matters; the area does.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UMT5_XXL_PARAMS", "VILA_8B_PARAMS", "WAN21_VAE_PARAMS", "MemoryEstimate", "vae_activation_gib",
           "weights_gib", "step_memory", "ways_to_fit", "fit_advice"]

GIB = 2**30
UMT5_XXL_PARAMS = 5_680_000_000  # umT5-xxl encoder: 24 layers, d_model 4096, d_ff 10240, 256384-token table
VILA_8B_PARAMS = 7_970_000_000  # Llama-3-8B without lm_head (VilaARModel drops it) + SigLIP-so400m + projector
WAN21_VAE_PARAMS = 127_000_000  # encoder and decoder (the whole module is loaded)
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_MEASURED_AREA = 480 * 832
_VAE_ACT_GIB = {"float32": 6.8, "bfloat16": 3.4, "float16": 3.4}  # measured peak minus weights, at 480x832
_TILE_AREA = 256 * 256  # diffusers' default tile (--vae-tiling)
CONTEXT_GIB = 0.8  # CUDA context, cuBLAS/cuDNN handles and workspaces
FRAGMENTATION = 1.05  # the caching allocator's slack over the live peak


def weights_gib(params: int, dtype: str) -> float:
    """Weights of ``params`` parameters in ``dtype`` ("float32", "bfloat16", "float16"), GiB."""
    return params * _BYTES[dtype] / GIB


def vae_activation_gib(height: int, width: int, dtype: str = "float32", *, tiling: bool = False) -> float:
    """Peak activation memory of one Wan2.1 VAE encode of a ``height x width`` clip (any frame count), GiB;
    with tiling the area is at most one tile's."""
    area = height * width
    if tiling:
        area = min(area, _TILE_AREA)
    return _VAE_ACT_GIB[dtype] * area / _MEASURED_AREA


@dataclass(frozen=True)
class MemoryEstimate:
    """GiB per part and the total the card needs (context and allocator slack included)."""

    parts: dict[str, float]

    @property
    def total(self) -> float:
        return CONTEXT_GIB + FRAGMENTATION * sum(self.parts.values())

    def fits(self, card_gib: float) -> bool:
        return self.total <= card_gib


def step_memory(step: str, *, height: int = 480, width: int = 832, vae_dtype: str = "float32",
                vae_tiling: bool = False, t5_on_gpu: bool = True, t5_dtype: str = "bfloat16",
                t5_params: int = UMT5_XXL_PARAMS, vila_params: int = VILA_8B_PARAMS, vila_dtype: str = "float16",
                vae_params: int = WAN21_VAE_PARAMS) -> MemoryEstimate:
    """Peak of ``step`` ("vae": VAE + umT5; "ar": VILA; "run": all three resident) at the largest clip size."""
    parts: dict[str, float] = {}
    if step in ("vae", "run"):
        parts["VAE weights"] = weights_gib(vae_params, vae_dtype)
        parts["VAE activations"] = vae_activation_gib(height, width, vae_dtype, tiling=vae_tiling)
        if t5_on_gpu:
            parts["umT5 weights"] = weights_gib(t5_params, t5_dtype)
            parts["umT5 activations"] = 0.5  # a batch of 8 prompts of 512 tokens
    if step in ("ar", "run"):
        parts["VILA weights"] = weights_gib(vila_params, vila_dtype)
        parts["VILA activations"] = 0.5  # 8 frames of 384 px and a short prompt
    if not parts:
        raise ValueError(f"unknown step {step!r} (vae, ar or run)")
    return MemoryEstimate(parts)


def ways_to_fit(step: str, card_gib: float, **sizes) -> list[tuple[str, float]]:
    """The options that bring ``step`` within ``card_gib`` (each with its estimated total), those that keep the
    numbers closest to the original first; empty when it fits as it is. ``sizes``: ``step_memory``'s keywords
    for the run as configured."""
    if step_memory(step, **sizes).fits(card_gib):
        return []
    out = []
    if step == "run":  # exact: the same records, the models are never resident together
        split = max(step_memory("vae", **sizes).total, step_memory("ar", **_ar_sizes(sizes)).total)
        if split <= card_gib:
            out.append(("`vae` then `ar` (two passes)", split))
    candidates = [
        ("--t5-cpu", {"t5_on_gpu": False}),
        ("--vae-tiling", {"vae_tiling": True}),
        ("--t5-cpu --vae-tiling", {"t5_on_gpu": False, "vae_tiling": True}),
        ("--vae-dtype bfloat16 --vae-channels-last", {"vae_dtype": "bfloat16"}),
        ("--t5-cpu --vae-dtype bfloat16 --vae-channels-last", {"t5_on_gpu": False, "vae_dtype": "bfloat16"}),
    ]
    for flags, change in candidates:
        estimate = step_memory(step, **{**sizes, **change})
        if estimate.fits(card_gib):
            out.append((flags, estimate.total))
    return out


def fit_advice(step: str, card_gib: float, card: str, **sizes) -> str | None:
    """One line for pre-flight when ``step`` is estimated not to fit ``card_gib`` (None when it fits): the
    estimate by part and the options that fit, closest to the original first."""
    estimate = step_memory(step, **sizes)
    if estimate.fits(card_gib):
        return None
    parts = ", ".join(f"{name} {gib:.1f}" for name, gib in estimate.parts.items())
    ways = ways_to_fit(step, card_gib, **sizes)
    fix = ("; it fits with " + " or ".join(f"{flags} (~{total:.0f} GiB)" for flags, total in ways) if ways
           else "; no option of this tool brings it within the card (a larger GPU, or smaller --target-size)")
    return (f"`{step}` needs about {estimate.total:.0f} GiB of GPU memory ({parts} GiB, an estimate) and {card} "
            f"has {card_gib:.0f} GiB{fix}")


def _ar_sizes(sizes: dict) -> dict:
    return {k: v for k, v in sizes.items() if k in ("vila_params", "vila_dtype")}
