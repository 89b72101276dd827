"""Contact sheet (PNG) and optional mp4 of what a record holds: its frames re-decoded, and its latents decoded.

Shows that cropping, orientation and the frame interval are right: the source and target frames are
re-decoded from the videos at the indices the record's ``meta`` lists and passed through the step-1
transform (``revise_prep.video``); with a VAE, the record's latents are un-normalised and decoded back
(``AutoencoderKLWan.decode``) into extra rows. Records without ``meta`` (the original script's) are
re-sampled with the pipeline's frame rules from settings the caller supplies.

Layout (deterministic; ``pad`` = 4, ``label_h`` = 14 by default)::

    width  = n_cols * tile_w + (n_cols + 1) * pad
    height = n_rows * (label_h + tile_h) + (n_rows + 1) * pad
    tile (row r, column c) top-left = (pad + c * (tile_w + pad),  pad + r * (label_h + tile_h + pad) + label_h)

with ``tile_w = min(W, max_tile_w)`` (default 256) and ``tile_h = round(H * tile_w / W)`` for the record's
target size (H, W); tiles are unscaled when ``W <= max_tile_w``. Columns: ``n_cols = min(max_frames, T)`` of
the record's T frames, at positions ``c * (T - 1) // (n_cols - 1)`` (0 when n_cols == 1). Rows, top to
bottom: source, source (VAE), target, target (VAE); the VAE rows only with a VAE, target rows only for an
edit pair whose target video is known. Each row's label sits in the ``label_h`` strip above its tiles.
The mp4 shows all T frames over time in a one-column layout of the same rows (n_cols = 1), its size
rounded up to even numbers, at 16 fps (Wan's rate).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from revise_prep.inputs.samples import resolve_path
from revise_prep.records.reader import load_record
from revise_prep.video import effective_interval, frame_indices, frame_to_tensor, probe_video, read_frames_rgb

__all__ = ["SheetLayout", "VideoPlan", "PreviewRow", "column_positions", "plan_videos", "build_rows", "render_sheet",
           "render_video", "decode_latents", "to_uint8", "make_preview", "PreviewError", "VIDEO_FPS"]

log = logging.getLogger(__name__)

VIDEO_FPS = 16
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
LATENT_KEYS = {"source": ("latent_feature", "latent_features"), "target": ("latent_feature_tgt",)}


class PreviewError(ValueError):
    """The record cannot be previewed as asked (no meta and no frame settings, unknown video, ...)."""


@dataclass(frozen=True)
class SheetLayout:
    """Pixel geometry of a contact sheet (the formula in the module docstring)."""

    n_cols: int
    n_rows: int
    tile_h: int
    tile_w: int
    pad: int = 4
    label_h: int = 14

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return (self.n_cols * self.tile_w + (self.n_cols + 1) * self.pad,
                self.n_rows * (self.label_h + self.tile_h) + (self.n_rows + 1) * self.pad)

    def row_top(self, row: int) -> int:
        """y of the row's label strip."""
        return self.pad + row * (self.label_h + self.tile_h + self.pad)

    def tile_origin(self, row: int, col: int) -> tuple[int, int]:
        """(x, y) of the top-left pixel of tile (row, col)."""
        return self.pad + col * (self.tile_w + self.pad), self.row_top(row) + self.label_h


def tile_size(height: int, width: int, max_tile_w: int = 256) -> tuple[int, int]:
    """(tile_h, tile_w): the target size, shrunk to ``max_tile_w`` wide keeping the aspect ratio."""
    tile_w = min(width, max_tile_w)
    return max(1, round(height * tile_w / width)), tile_w


def column_positions(total: int, max_frames: int) -> list[int]:
    """Which of a record's ``total`` frames become columns: evenly spread, first and last included."""
    n = max(1, min(max_frames, total))
    if n == 1:
        return [0]
    return [c * (total - 1) // (n - 1) for c in range(n)]


@dataclass(frozen=True)
class VideoPlan:
    """One video of a record: where it is and which frames (decode order) the record was made from."""

    role: str
    path: str  # as written in the record
    file: Path
    indices: list[int]
    interval: int
    requested_interval: int | None
    auto_rotate: bool = True  # turn frames upright by the display matrix, as the record was made


def _frame_settings(meta: dict[str, Any]) -> dict[str, Any]:
    """The step-1 frame settings stored in ``meta`` (a step-2 record keeps them as ``vae_settings``)."""
    for key in ("vae_settings", "settings"):
        value = meta.get(key)
        if isinstance(value, dict) and "height" in value and "width" in value:
            return value
    return {}


def _latent(record: dict[str, Any], role: str) -> torch.Tensor | None:
    for key in LATENT_KEYS[role]:
        if isinstance(record.get(key), torch.Tensor):
            return record[key]
    return None


def target_size(record: dict[str, Any], override: tuple[int, int] | None = None) -> tuple[int, int]:
    """(H, W) the frames were resized to: meta settings, else ``override``, else 8x the latent's size."""
    settings = _frame_settings(record.get("meta") or {})
    if settings:
        return int(settings["height"]), int(settings["width"])
    if override is not None:
        return override
    latent = _latent(record, "source")
    if latent is None:
        raise PreviewError("record has neither meta settings nor a source latent: pass --target-size")
    return int(latent.shape[-2]) * 8, int(latent.shape[-1]) * 8


def plan_videos(record: dict[str, Any], *, video_root: str | os.PathLike[str] = ".", interval: int | None = None,
                frame_num: int | None = None, skip: int = 0, strict_count: bool = True,
                target_video: str | None = None, auto_rotate: bool = True) -> list[VideoPlan]:
    """The videos to re-decode and their frame indices: from ``meta`` when present, else by the pipeline's rules.

    Without meta (a record of the original script), ``interval`` (the requested sampling rate) is required;
    ``frame_num`` defaults to the record's; the target video is only known through ``target_video``.
    Rotation follows the record's settings (records made before ``auto_rotate`` existed were not rotated);
    ``auto_rotate`` applies to records without meta (the original rotates).
    """
    meta = record.get("meta") or {}
    videos = meta.get("videos")
    if isinstance(videos, dict) and videos:
        rotate = bool(_frame_settings(meta).get("auto_rotate", False))
        plans = []
        for role in ("source", "target"):
            v = videos.get(role)
            if not v:
                continue
            path = target_video if (role == "target" and target_video) else v["path"]
            plans.append(VideoPlan(role, path, resolve_path(path, video_root), [int(i) for i in v["indices"]],
                                   int(v["interval"]), v.get("requested_interval"), rotate))
        return plans
    if interval is None:
        raise PreviewError("record has no meta (made by the original script?): pass --sampling-rate (and "
                           "--skip-num / --frame-num / --target-size when not the defaults) to re-decode its frames")
    frame_num = int(frame_num or record.get("frame_num") or 0)
    if frame_num < 1:
        raise PreviewError("record has no frame_num: pass --frame-num")
    roles = [("source", record.get("video_path_tgt") if "video_path" not in record else record["video_path"])]
    if target_video:
        roles.append(("target", target_video))
    elif _latent(record, "target") is not None:
        log.warning("the record does not name its target video (original format): pass --target-video to show it")
    plans = []
    for role, path in roles:
        if not isinstance(path, str):
            raise PreviewError(f"record has no {role} video path")
        file = resolve_path(path, video_root)
        info = probe_video(file, read_rotation=False)
        rate = effective_interval(info.num_frames, frame_num, interval, skip, strict_count)
        if rate == 0:
            raise PreviewError(f"{file}: {info.num_frames} frames, too few for {frame_num} frames (skip {skip})")
        plans.append(VideoPlan(role, path, file, frame_indices(frame_num, rate, skip), rate, interval, auto_rotate))
    return plans


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float [..., 3, H, W] in [-1, 1] -> uint8 [..., H, W, 3]; exact inverse of the step-1 normalisation."""
    x = ((frames.float().clamp(-1, 1) * 0.5 + 0.5) * 255.0).round().to(torch.uint8)
    return x.movedim(-3, -1).numpy()


def redecode(plan: VideoPlan, positions: list[int], size: tuple[int, int]) -> list[np.ndarray]:
    """The record's frames at ``positions`` (indices into ``plan.indices``), cropped/resized as step 1 does."""
    wanted = [plan.indices[p] for p in positions]
    return [to_uint8(frame_to_tensor(rgb, *size))
            for rgb in read_frames_rgb(plan.file, wanted, auto_rotate=plan.auto_rotate)]


@torch.inference_mode()
def decode_latents(vae: Any, latent: torch.Tensor) -> torch.Tensor:
    """Normalised latent [z, t, h, w] -> frames [T, 3, 8h, 8w] in [-1, 1] through ``AutoencoderKLWan.decode``.

    ``vae`` is a :class:`~revise_prep.models.wan_vae.WanVAE`; the record holds ``(mu - mean) / std``, so
    ``mu = latent * std + mean`` with the model config's ``latents_mean`` / ``latents_std``.
    """
    model = vae.model
    mean = torch.tensor(model.config.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
    std = torch.tensor(model.config.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)
    z = latent.float()[None] * std + mean
    param = next(model.parameters())
    out = model.decode(z.to(device=param.device, dtype=param.dtype)).sample
    return out[0].float().clamp(-1, 1).permute(1, 0, 2, 3).cpu()


@dataclass
class PreviewRow:
    """One labelled row: ``frames`` maps a record frame position to an HxWx3 uint8 image."""

    label: str
    frames: dict[int, np.ndarray]


def _label(plan: VideoPlan, total: int) -> str:
    asked = f", asked {plan.requested_interval}" if plan.requested_interval not in (None, plan.interval) else ""
    return (f"{plan.role}: {plan.path} | frames {plan.indices[0]}..{plan.indices[-1]} every {plan.interval}{asked} "
            f"({total})")


def build_rows(record: dict[str, Any], plans: list[VideoPlan], positions: list[int], size: tuple[int, int],
               vae: Any = None) -> list[PreviewRow]:
    """Rows in sheet order: each video re-decoded, each followed by its latent decoded (with a VAE)."""
    rows = []
    by_role = {p.role: p for p in plans}
    for role in ("source", "target"):
        plan = by_role.get(role)
        latent = _latent(record, role)
        if plan is not None:
            frames = redecode(plan, positions, size)
            rows.append(PreviewRow(_label(plan, len(plan.indices)), dict(zip(positions, frames))))
        if vae is not None and latent is not None:
            decoded = to_uint8(decode_latents(vae, latent))
            n = decoded.shape[0]
            shape = "x".join(str(d) for d in latent.shape)
            rows.append(PreviewRow(f"{role} latent {shape} decoded by the VAE ({n} frames)",
                                   {p: decoded[min(p, n - 1)] for p in positions}))
    if not rows:
        raise PreviewError("nothing to show: no video to re-decode and no VAE given")
    return rows


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _fit(img: np.ndarray, tile_h: int, tile_w: int) -> Image.Image:
    pil = Image.fromarray(img)
    return pil if pil.size == (tile_w, tile_h) else pil.resize((tile_w, tile_h), Image.BILINEAR)


def _draw(layout: SheetLayout, rows: list[PreviewRow], columns: list[int], labels: list[str]) -> Image.Image:
    canvas = Image.new("RGB", layout.size, BACKGROUND)
    draw, font = ImageDraw.Draw(canvas), _font()
    for r, (row, label) in enumerate(zip(rows, labels)):
        draw.text((layout.pad, layout.row_top(r) + 1), label, fill=TEXT, font=font)
        for c, position in enumerate(columns):
            if position in row.frames:
                canvas.paste(_fit(row.frames[position], layout.tile_h, layout.tile_w), layout.tile_origin(r, c))
    return canvas


def render_sheet(rows: list[PreviewRow], positions: list[int], tile: tuple[int, int]) -> Image.Image:
    """The contact sheet: one column per position, one labelled row per :class:`PreviewRow`."""
    layout = SheetLayout(n_cols=len(positions), n_rows=len(rows), tile_h=tile[0], tile_w=tile[1])
    return _draw(layout, rows, positions, [r.label for r in rows])


def render_video(rows: list[PreviewRow], total: int, tile: tuple[int, int], path: str | os.PathLike[str],
                 fps: int = VIDEO_FPS) -> Path:
    """An mp4 of ``total`` frames: frame t is the one-column sheet of every row's frame t (PyAV, yuv420p)."""
    import av

    layout = SheetLayout(n_cols=1, n_rows=len(rows), tile_h=tile[0], tile_w=tile[1])
    width, height = (v + v % 2 for v in layout.size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(total):
            labels = [f"{r.label} [{t + 1}/{total}]" for r in rows]
            frame = Image.new("RGB", (width, height), BACKGROUND)
            frame.paste(_draw(layout, rows, [t], labels), (0, 0))
            out.mux(stream.encode(av.VideoFrame.from_image(frame)))
        out.mux(stream.encode(None))
    return path


def make_preview(record_path: str | os.PathLike[str], out: str | os.PathLike[str], *, video_root: str = ".",
                 vae_path: str | None = None, video_out: str | None = None, max_frames: int = 9,
                 max_tile_w: int = 256, interval: int | None = None, frame_num: int | None = None, skip: int = 0,
                 size: tuple[int, int] | None = None, strict_count: bool = True,
                 target_video: str | None = None, device: str = "cpu", auto_rotate: bool = True) -> dict[str, Any]:
    """Write the PNG (and the mp4 when ``video_out``); returns what was drawn (paths, layout, rows)."""
    record = load_record(record_path)
    hw = target_size(record, size)
    plans = plan_videos(record, video_root=video_root, interval=interval, frame_num=frame_num, skip=skip,
                        strict_count=strict_count, target_video=target_video, auto_rotate=auto_rotate)
    for plan in plans:
        if not plan.file.is_file():
            raise PreviewError(f"{plan.role} video not found: {plan.file} (use --video-root)")
    total = len(plans[0].indices) if plans else int(record.get("frame_num") or 1)
    vae = None
    if vae_path:
        from revise_prep.models.wan_vae import WanVAE

        vae = WanVAE.load(vae_path, device=device)
    positions = column_positions(total, max_frames)
    tile = tile_size(*hw, max_tile_w)
    all_positions = list(range(total)) if video_out else positions
    rows = build_rows(record, plans, all_positions, hw, vae)
    sheet = render_sheet(rows, positions, tile)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    log.info("wrote %s (%dx%d, %d rows x %d frames)", out, *sheet.size, len(rows), len(positions))
    result = {"png": str(out), "size": sheet.size, "positions": positions, "tile": tile,
              "rows": [r.label for r in rows]}
    if video_out:
        result["video"] = str(render_video(rows, total, tile, video_out))
        log.info("wrote %s (%d frames)", video_out, total)
    return result
