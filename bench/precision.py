"""Benchmark: numerical deviation of the speed options from float32 on the golden fixtures.

Not a test. Prints max / mean |delta| and the relative error ||delta||_2 / ||reference||_2 of

* ``--vae-dtype bfloat16`` vs float32: every case of ``fixtures/reference/vae`` (tiny_Wan2.1_VAE.pth, its
  frames and random inputs), bf16 latents against the float32 ones (and float32 against the stored
  expected latents, for scale);
* VAE tiling (``WanVAE.load(..., tiling=True)``) vs untiled: the fixture inputs are all below diffusers'
  tile size (256 px), where tiling does nothing, so a generated larger input is used with the fixture
  checkpoint: 17 frames of 480x832 decoded from fixtures/reference/videos/source_0.mp4 (a real 720p video);
  ``--quick`` uses 1x96x112 frames with diffusers tiles shrunk to 64 px (stride 48) so tiling still runs;
* umT5 bfloat16 vs float32 on every prompt of ``fixtures/reference/t5``.

    .venv/bin/python bench/precision.py [--out FILE] [--quick] [--reference DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("REVISE_PREP_SHARED", REPO.parent / "shared")) / "fixtures" / "reference"
log = logging.getLogger("bench.precision")


def deviation(got: torch.Tensor, ref: torch.Tensor) -> tuple[float, float, float]:
    d = (got.float() - ref.float()).abs()
    return d.max().item(), d.mean().item(), (d.norm() / ref.float().norm().clamp_min(1e-30)).item()


def vae_dtype_rows(ref: Path, quick: bool) -> list[tuple[str, str, tuple[float, float, float]]]:
    from revise_prep.models.wan_vae import WanVAE

    cfg = json.loads((ref / "vae" / "config.json").read_text())
    expected = load_file(str(ref / "vae" / "expected_latents.safetensors"))
    ckpt = ref / "vae" / cfg["checkpoint"]
    f32, b16 = WanVAE.load(ckpt, dtype="float32"), WanVAE.load(ckpt, dtype="bfloat16")
    rows = []
    cases = cfg["cases"][:1] if quick else cfg["cases"]
    for case in cases:
        if case["input_kind"] == "frames":
            x = load_file(str(ref / case["input"]))["frames"].transpose(0, 1).unsqueeze(0)
        else:
            file, key = case["input"].split(":")
            x = load_file(str(ref / file))[key]
        shape = "x".join(map(str, x.shape[2:]))
        lat32, lat16 = f32.encode(x)[0], b16.encode(x)[0]
        rows.append(("VAE float32 vs expected (fixture)", f"{case['id']} {shape}", deviation(lat32, expected[case["id"]])))
        rows.append(("VAE bfloat16 vs float32", f"{case['id']} {shape}", deviation(lat16, lat32)))
    return rows


def vae_tiling_rows(ref: Path, quick: bool) -> list[tuple[str, str, tuple[float, float, float]]]:
    from revise_prep.models.wan_vae import WanVAE
    from revise_prep.settings import FrameSettings
    from revise_prep.video import read_clip

    ckpt = ref / "vae" / "tiny_Wan2.1_VAE.pth"
    plain = WanVAE.load(ckpt, dtype="float32")
    tiled = WanVAE.load(ckpt, dtype="float32", tiling=True)
    s = (FrameSettings(frame_num=1, interval=2, height=96, width=112) if quick
         else FrameSettings(frame_num=17, interval=2, height=480, width=832))
    if quick:  # shrink the tiles so a small input is split (the defaults only split above 256 px)
        tiled.model.enable_tiling(tile_sample_min_height=64, tile_sample_min_width=64,
                                  tile_sample_stride_height=48, tile_sample_stride_width=48)
    m = tiled.model
    tiles = f"tiles {m.tile_sample_min_height}px stride {m.tile_sample_stride_height}px"
    x = read_clip(ref / "videos" / "source_0.mp4", s).frames.permute(1, 0, 2, 3)[None]
    t0 = time.perf_counter()
    a = plain.encode(x)[0]
    t1 = time.perf_counter()
    b = tiled.encode(x)[0]
    t2 = time.perf_counter()
    log.info("untiled %.1f s, tiled %.1f s", t1 - t0, t2 - t1)
    label = f"source_0.mp4 {s.frame_num}x{s.height}x{s.width} ({tiles})"
    return [("VAE tiled vs untiled (float32)", label, deviation(b, a))]


def t5_rows(ref: Path, quick: bool) -> list[tuple[str, str, tuple[float, float, float]]]:
    from revise_prep.models.umt5 import UMT5TextEncoder

    cfg = json.loads((ref / "t5" / "config.json").read_text())
    expected = load_file(str(ref / "t5" / "expected_embeddings.safetensors"))
    kw = dict(tokenizer=ref / "t5" / cfg["tokenizer_dir"], text_len=cfg["text_len"])
    f32 = UMT5TextEncoder.load(ref / "t5" / cfg["checkpoint"], dtype="float32", **kw)
    b16 = UMT5TextEncoder.load(ref / "t5" / cfg["checkpoint"], dtype="bfloat16", **kw)
    recs = cfg["prompts"][:2] if quick else cfg["prompts"]
    prompts = [r["prompt_after_newline_replacement"] for r in recs]
    e32, e16 = f32.encode(prompts), b16.encode(prompts)
    rows = []
    for rec, a, b in zip(recs, e32, e16):
        rows.append(("umT5 float32 vs expected (fixture)", rec["key"], deviation(a, expected[rec["key"]])))
        rows.append(("umT5 bfloat16 vs float32", rec["key"], deviation(b, a)))
    cat32, cat16 = torch.cat(e32), torch.cat(e16)
    rows.append(("umT5 bfloat16 vs float32", f"all {len(prompts)} prompts", deviation(cat16, cat32)))
    return rows


def table(rows) -> str:
    lines = ["Deviation of the speed options on the golden fixtures (CPU). rel = ||delta||_2 / ||reference||_2.", "",
             "| comparison | input | max abs | mean abs | rel |", "|---|---|---:|---:|---:|"]
    lines += [f"| {c} | {i} | {mx:.3g} | {mn:.3g} | {rel:.3g} |" for c, i, (mx, mn, rel) in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few cases and a small tiled input (seconds)")
    ap.add_argument("--reference", type=Path, default=REFERENCE, help="fixtures/reference folder")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("revise_prep").setLevel(logging.WARNING)
    if not (args.reference / "vae" / "config.json").is_file():
        print(f"golden fixtures not found at {args.reference}", file=sys.stderr)
        return 2
    rows = vae_dtype_rows(args.reference, args.quick) + vae_tiling_rows(args.reference, args.quick) + \
        t5_rows(args.reference, args.quick)
    text = table(rows)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
