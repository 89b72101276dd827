"""Wan2.1 VAE encoder adapter over diffusers' ``AutoencoderKLWan``.

Loads the original ``Wan2.1_VAE.pth`` (architecture read off the tensor shapes, keys converted
with diffusers' own converter, strict load) or a diffusers VAE, and encodes clips to the
normalised posterior mean ``(mu - mean) * (1/std)`` exactly as the original pipeline does.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from revise_prep.video.transform import normalise_pixels

from .base import ModuleAdapter, load_state_dict_file, resolve_dtype, source_id
from .identity import checkpoint_files, files_identity, hub_identity
from .layouts import VAE_ORIGINAL_FILE, VAE_SUBFOLDER, VaeCheckpoint, find_vae, hub_download
from .wan_vae_variants import backend_flags, compile_encoder, conv3d_fallback, cudnn_version, fold_padding, to_channels_last

__all__ = ["WanVAE", "vae_config_from_original", "vae_files", "vae_identifier", "vae_identity",
           "variant_signature",
           "WAN21_LATENTS_MEAN", "WAN21_LATENTS_STD"]

log = logging.getLogger(__name__)

# Wan2.1's published per-channel latent statistics (the original WanVAE's ``mean``/``std``).
WAN21_LATENTS_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENTS_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916,
)  # fmt: skip

_DOWN = re.compile(r"^encoder\.downsamples\.(\d+)\.")

SPATIAL_STRIDE = 8  # three stride-2 stages; each keeps floor(n / 2) of n rows or columns


def latent_size(height: int, width: int) -> tuple[int, int]:
    """The latents' (height, width) for frames of ``height`` x ``width``: each of the encoder's three
    downsampling convolutions (stride 2, padded right/bottom by one) halves a side, rounding down."""
    return height // SPATIAL_STRIDE, width // SPATIAL_STRIDE


def vae_config_from_original(state_dict: dict[str, torch.Tensor]) -> dict:
    """``AutoencoderKLWan`` constructor arguments read off an original Wan VAE state dict's shapes.

    base_dim from ``encoder.conv1.weight`` [dim,3,3,3,3]; z_dim from ``conv1.weight`` [2z,2z,1,1,1];
    dim_mult / num_res_blocks / temperal_downsample from the ``encoder.downsamples.N`` sequence
    (residual blocks, then a resample per stage, with ``time_conv`` when it also downsamples time).
    """
    if "encoder.conv1.weight" not in state_dict or "conv1.weight" not in state_dict:
        raise ValueError(
            "not an original Wan VAE state dict (missing encoder.conv1.weight / conv1.weight); "
            f"first keys: {list(state_dict)[:5]}"
        )
    base_dim = int(state_dict["encoder.conv1.weight"].shape[0])
    z_dim = int(state_dict["conv1.weight"].shape[0]) // 2
    blocks: dict[int, set[str]] = {}
    for key in state_dict:
        m = _DOWN.match(key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(key[m.end():])
    stages: list[list[int]] = [[]]  # output channels of each residual block, per stage
    temporal: list[bool] = []
    for idx in sorted(blocks):
        names = blocks[idx]
        if "residual.6.weight" in names:
            stages[-1].append(int(state_dict[f"encoder.downsamples.{idx}.residual.6.weight"].shape[0]))
        elif "resample.1.weight" in names:
            temporal.append("time_conv.weight" in names)
            stages.append([])
        else:
            raise ValueError(
                f"unsupported Wan VAE layout: encoder.downsamples.{idx} holds {sorted(names)} "
                "(attention inside the down blocks is not supported)"
            )
    counts = {len(s) for s in stages}
    if len(counts) != 1 or 0 in counts:
        raise ValueError(f"inconsistent residual blocks per stage in the Wan VAE checkpoint: {[len(s) for s in stages]}")
    dim_mult = []
    for stage in stages:
        if stage[-1] % base_dim:
            raise ValueError(f"stage width {stage[-1]} is not a multiple of base_dim {base_dim}")
        dim_mult.append(stage[-1] // base_dim)
    num_res_blocks = counts.pop()
    if num_res_blocks != 2:
        # diffusers' converter hard-codes the decoder numbering of num_res_blocks=2.
        raise ValueError(f"only num_res_blocks=2 Wan VAEs convert (checkpoint has {num_res_blocks})")
    return {
        "base_dim": base_dim,
        "z_dim": z_dim,
        "dim_mult": dim_mult,
        "num_res_blocks": num_res_blocks,
        "attn_scales": [],
        "temperal_downsample": temporal,
        "dropout": 0.0,
        "latents_mean": list(WAN21_LATENTS_MEAN),
        "latents_std": list(WAN21_LATENTS_STD),
    }


def _from_original(path: str | Path):
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    original = load_state_dict_file(path)
    config = vae_config_from_original(original)
    converted = convert_wan_vae_to_diffusers(original)
    with torch.device("meta"):
        model = AutoencoderKLWan(**config)
    converted = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in converted.items()}
    model.load_state_dict(converted, strict=True, assign=True)
    meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if meta:
        raise RuntimeError(f"VAE tensors left uninitialised after loading {path}: {meta[:5]}")
    log.info("loaded original Wan VAE %s (base_dim=%d, z_dim=%d)", path, config["base_dim"], config["z_dim"])
    return model


def _from_diffusers(location: str, subfolder: str | None):
    from diffusers import AutoencoderKLWan

    model = AutoencoderKLWan.from_pretrained(location, subfolder=subfolder, torch_dtype=torch.float32)
    log.info("loaded diffusers Wan VAE %s%s", location, f" ({subfolder})" if subfolder else "")
    return model


def _load_model(ckpt: VaeCheckpoint):
    if ckpt.kind == "original":
        return _from_original(ckpt.location)
    if ckpt.kind == "diffusers":
        return _from_diffusers(ckpt.location, ckpt.subfolder)
    # Hub id: an original Wan release holds Wan2.1_VAE.pth; otherwise expect a diffusers repo.
    if not ckpt.location.lower().endswith("-diffusers"):
        local = hub_download(ckpt.location, VAE_ORIGINAL_FILE)
        if local is not None:
            return _from_original(local)
    return _from_diffusers(ckpt.location, VAE_SUBFOLDER)


def vae_identifier(source: str | Path) -> str:
    """How records name the VAE they were made with (its source, as ``WanVAE.identifier``)."""
    return f"wan2.1-vae:{source_id(source)}"


def vae_files(source: str | Path) -> dict[str, Path] | None:
    """The VAE checkpoint's files by name, found without loading it; None for a hub id not on disk."""
    return checkpoint_files(find_vae(source))


def vae_identity(source: str | Path) -> str:
    """The VAE checkpoint's identity (``models/identity.py``) without loading it: its layout and weight files."""
    ckpt = find_vae(source)
    files = checkpoint_files(ckpt)
    return hub_identity(ckpt.location) if files is None else files_identity(ckpt.kind, files)


def variant_signature(channels_last: bool, compiled: bool, strict_fp32: bool) -> dict[str, bool]:
    """The VAE variants that change a record's bits, for the resume signature: only those switched on, so
    records made without them keep their signature."""
    on = {"vae_channels_last": channels_last, "vae_compile": compiled, "vae_strict_fp32": strict_fp32}
    return {k: True for k, v in on.items() if v}


@dataclass(eq=False)
class WanVAE(ModuleAdapter):
    """A loaded Wan2.1 VAE that encodes clips to normalised latents (implements ``VideoEncoder``).

    The variants (``wan_vae_variants``) are options here, so the pipeline never knows them: the H/W padding
    folded into the convolutions (bit-identical on the CPU, always on unless ``fold=False``),
    ``channels_last``, ``compiled``, ``strict_fp32`` and ``cudnn_benchmark``.
    """

    model: torch.nn.Module
    identifier: str
    _mean: torch.Tensor = field(repr=False)
    _inv_std: torch.Tensor = field(repr=False)
    batch_clips: bool = False  # encode a [B,...] batch in one call (faster on a GPU; float32 bits may differ)
    channels_last: bool = False  # NDHWC weights and activations (float32 bits differ from the default)
    compiled: bool = False  # torch.compile'd encoder (float32 bits differ from the default)
    strict_fp32: bool = False  # TF32 off on a GPU (PyTorch's default lets cuDNN convolutions use TF32)
    cudnn_benchmark: bool = True  # cuDNN picks the fastest algorithm per shape (GPU)

    @classmethod
    def load(
        cls,
        source: str | Path,
        *,
        dtype: torch.dtype | str = torch.float32,
        device: str | torch.device = "cpu",
        tiling: bool = False,
        batch_clips: bool = False,
        **variant,
    ) -> WanVAE:
        """Load from a Wan release dir, a ``.pth`` file, a diffusers dir or a hub id (see ``layouts``);
        ``variant``: ``channels_last``, ``compiled``, ``strict_fp32``, ``cudnn_benchmark``, ``fold``."""
        ckpt = find_vae(source)
        model = _load_model(ckpt)
        return cls.wrap(model, identifier=vae_identifier(source), dtype=dtype, device=device,
                        tiling=tiling, batch_clips=batch_clips, **variant)

    @classmethod
    def wrap(
        cls,
        model: torch.nn.Module,
        *,
        identifier: str,
        dtype: torch.dtype | str = torch.float32,
        device: str | torch.device = "cpu",
        tiling: bool = False,
        batch_clips: bool = False,
        channels_last: bool = False,
        compiled: bool = False,
        strict_fp32: bool = False,
        cudnn_benchmark: bool = True,
        fold: bool = True,
        compile_backend: str = "inductor",
    ) -> WanVAE:
        """An ``AutoencoderKLWan`` already built (``load``, or random weights in the benchmarks) as the adapter."""
        model.eval().requires_grad_(False)
        target = resolve_dtype(dtype)
        if target != torch.float32:
            model.to(dtype=target)
        dev = torch.device(device)
        model.to(device=dev)
        if tiling:
            model.enable_tiling()
        if channels_last:
            to_channels_last(model)
        elif fold:
            fold_padding(model)
        if compiled:
            compile_encoder(model, backend=compile_backend)
        mean = torch.tensor(model.config.latents_mean, dtype=torch.float32)
        std = torch.tensor(model.config.latents_std, dtype=torch.float32)
        if mean.numel() != model.config.z_dim or std.numel() != model.config.z_dim:
            raise ValueError(f"latents_mean/std have {mean.numel()}/{std.numel()} values for z_dim {model.config.z_dim}")
        # As the original: multiply by 1/std computed in float32 (dividing by std differs by ~5e-7).
        inv_std = 1.0 / std
        if dev.type == "cuda":
            version = cudnn_version()
            log.debug("VAE on %s (%s): torch %s, CUDA %s, cuDNN %s, cudnn.benchmark %s, TF32 %s, channels-last %s, "
                      "compiled %s", torch.cuda.get_device_name(dev), target, torch.__version__, torch.version.cuda,
                      version, cudnn_benchmark, "off" if strict_fp32 else "PyTorch's default", channels_last, compiled)
            if conv3d_fallback(version, target, channels_last):
                log.warning("cuDNN %s: PyTorch runs %s 3-D convolutions in NCDHW layout on its slow vol2col path, "
                            "not cuDNN; --vae-channels-last keeps them on cuDNN", version, target)
        return cls(
            model=model,
            identifier=identifier,
            _mean=mean.view(1, -1, 1, 1, 1).to(dev),
            _inv_std=inv_std.view(1, -1, 1, 1, 1).to(dev),
            batch_clips=batch_clips,
            channels_last=channels_last,
            compiled=compiled,
            strict_fp32=strict_fp32,
            cudnn_benchmark=cudnn_benchmark,
        )

    @property
    def z_dim(self) -> int:
        return int(self.model.config.z_dim)

    def variant_signature(self) -> dict[str, bool]:
        """The variants that change a record's bits, for the resume signature (:func:`variant_signature`)."""
        return variant_signature(self.channels_last, self.compiled, self.strict_fp32)

    @torch.inference_mode()
    def encode(self, videos: torch.Tensor, *, to_cpu: bool = True) -> torch.Tensor:
        """[B,3,T,H,W] in [-1,1] -> float32 [B,z,1+(T-1)//4,H/8,W/8] on the CPU, ``(mu - mean) * (1/std)``
        (``to_cpu=False``: left on the model's device, for an engine that copies it back without waiting).

        ``videos`` may also be uint8 pixels (the step-1 frames before normalisation): they travel to the
        device at a quarter of the size and are normalised there with bit-identical values.

        By default clips are encoded one at a time, which guarantees a clip's latent does not depend on what
        else is in the batch (batched convolutions differ from single ones by ~4e-6 in float32 on the CPU);
        ``batch_clips=True`` encodes the batch in one call for speed.
        """
        if videos.dim() != 5 or videos.shape[1] != 3:
            raise ValueError(f"expected videos [B,3,T,H,W], got {tuple(videos.shape)}")
        device = self.device
        if device.type == "cuda" and videos.device.type == "cpu" and not videos.is_pinned():
            videos = videos.pin_memory()
        out = []
        with backend_flags(device, benchmark=self.cudnn_benchmark, strict_fp32=self.strict_fp32):
            for clip in (videos,) if self.batch_clips else videos.split(1):
                x = clip.to(device=device, non_blocking=True)
                x = (normalise_pixels(x) if x.dtype == torch.uint8 else x).to(self.dtype)
                # one layout for every caller (a clip may arrive as a permuted view of the decoded frames)
                x = x.contiguous(memory_format=torch.channels_last_3d if self.channels_last else torch.contiguous_format)
                mu = self.model.encode(x).latent_dist.mean
                latent = (mu.float() - self._mean) * self._inv_std
                out.append((latent.to("cpu", torch.float32) if to_cpu else latent).contiguous())
        return torch.cat(out)
