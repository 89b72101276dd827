"""Benchmark: full-size models with random weights on one GPU: per-model seconds, pipeline vs pure vs original-style.

Not a test. Architectures at their real sizes, random weights, built directly on the GPU (``with
torch.device("cuda")`` and the target default dtype, so no slow CPU init; nothing is written to disk):

* Wan2.1 VAE: ``AutoencoderKLWan()`` default config (base_dim 96, z_dim 16), wrapped in ``WanVAE``;
* umT5-xxl encoder: ``UMT5EncoderModel`` (24 layers, d_model 4096, 64 heads, d_ff 10240, vocab 256384), bf16,
  wrapped in ``UMT5TextEncoder`` with the tiny offline tokenizer (token ids only index the table);
* VILA-8B: Llama-3-8B-shaped LLM (hidden 4096, 32 layers, 32 heads, 8 KV heads, intermediate 14336, vocab
  128256) + SigLIP-so400m (hidden 1152, 27 layers, 16 heads, intermediate 4304, patch 14, 384 px) +
  mlp_downsample projector, fp16, instantiated in memory and handed to ``VilaARModel`` (the checkpoint
  description comes from a ``make_tiny_vila`` folder whose configs are replaced by the full-size ones).

Inputs: generated 1280x720 H.264 videos (rich synthetic content), 81 frames / interval 3 / 480x832.
Reports per-sample seconds (VAE fp32, VAE bf16, umT5, VILA), step-1 pipeline samples/s (``run_step1``,
VAE fp32, DataLoader workers), the pure-model samples/s (pre-decoded tensors, same calls), a loop
imitating the original (synchronous full decode to count + decode converting every frame, then VAE
fp32 batch 1 + umT5, no overlap), and peak GPU memory. Writes the table to ``--out``.

    .venv/bin/python bench/gpu.py --out bench_gpu.md          # needs CUDA; ~5 min on one H100
    .venv/bin/python bench/gpu.py --quick                     # tiny sizes on CPU (CI smoke)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import av
import torch

from revise_prep.inputs import parse_entries
from revise_prep.settings import FrameSettings, ModelSettings, RunSettings
from revise_prep.testing.videos import make_video
from revise_prep.video import effective_interval, frame_indices, frames_to_tensor, read_clip

log = logging.getLogger("bench.gpu")
PROMPTS = ("Make the whole scene look like it is covered in fresh snow, slowly.",
           "Replace the moving shapes with falling autumn leaves and keep the background.",
           "Turn the daytime scene into night with a full moon over the lake.")

FULL = dict(
    vae={},  # AutoencoderKLWan defaults = Wan2.1 (base_dim 96, z_dim 16, dim_mult 1,2,4,4)
    t5=dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64),
    llm=dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
             intermediate_size=14336, vocab_size=128256, head_dim=128),
    vision=dict(hidden_size=1152, num_hidden_layers=27, num_attention_heads=16, intermediate_size=4304,
                patch_size=14, image_size=384),
    frames=FrameSettings(frame_num=81, interval=3, height=480, width=832),
    video=dict(width=1280, height=720, frames=250), pairs=3, workers=4, text_len=512, repeats=2,
)
QUICK = dict(
    vae=dict(base_dim=8),
    t5=dict(vocab_size=512, d_model=64, d_kv=16, d_ff=160, num_layers=2, num_heads=4),
    llm=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=128, vocab_size=512, head_dim=16),
    vision=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                patch_size=14, image_size=98),
    frames=FrameSettings(frame_num=1, interval=2, height=16, width=16),
    video=dict(width=160, height=96, frames=12), pairs=1, workers=1, text_len=16, repeats=1,
)


@contextmanager
def build_on(device: torch.device, dtype: torch.dtype):
    """Construct modules directly on ``device`` in ``dtype`` (random init runs there, not on the CPU)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(old)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


# ------------------------------------------------------------------------------------------------ models
def build_vae(cfg: dict, device: torch.device, dtype: torch.dtype):
    from diffusers import AutoencoderKLWan

    from revise_prep.models.wan_vae import WAN21_LATENTS_MEAN, WAN21_LATENTS_STD, WanVAE

    with build_on(device, torch.float32):
        model = AutoencoderKLWan(**cfg).eval().requires_grad_(False)
    if dtype != torch.float32:
        model.to(dtype)
    mean = torch.tensor(WAN21_LATENTS_MEAN).view(1, -1, 1, 1, 1).to(device)
    inv_std = (1.0 / torch.tensor(WAN21_LATENTS_STD)).view(1, -1, 1, 1, 1).to(device)
    return WanVAE(model=model, identifier=f"wan2.1-vae:random-{cfg or 'full'}", _mean=mean, _inv_std=inv_std)


def build_t5(cfg: dict, device: torch.device, tokenizer_dir: Path, text_len: int):
    from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

    from revise_prep.models.umt5 import UMT5TextEncoder

    config = UMT5Config(**cfg, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                        feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6,
                        pad_token_id=0, eos_token_id=1)
    with build_on(device, torch.bfloat16):
        model = UMT5EncoderModel(config).eval().requires_grad_(False)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    return UMT5TextEncoder(model=model, tokenizer=tok, identifier="umt5:random", text_len=text_len)


def build_vila(llm_cfg: dict, vision_cfg: dict, device: torch.device, tmp: Path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, SiglipVisionConfig, SiglipVisionModel

    from revise_prep.models.vila import VilaARModel
    from revise_prep.models.vila.config import read_checkpoint
    from revise_prep.models.vila.projector import MultimodalProjector
    from revise_prep.testing.tiny_vila import make_tiny_vila

    dtype = torch.float16  # VILA's model_dtype
    tiny = read_checkpoint(make_tiny_vila(tmp / "vila-layout"))
    llm_config = {**tiny.llm_config, **llm_cfg}
    vis_config = {**tiny.vision_config, **vision_cfg}
    pre = {**tiny.image_processor_config, "size": {"height": vision_cfg["image_size"], "width": vision_cfg["image_size"]}}
    ckpt = dataclasses.replace(tiny, llm_config=llm_config, vision_config=vis_config, image_processor_config=pre,
                               root_config={**tiny.root_config, "hidden_size": llm_cfg["hidden_size"],
                                            "mm_hidden_size": vision_cfg["hidden_size"]})
    tok = AutoTokenizer.from_pretrained(str(tiny.llm_dir), padding_side="right")
    keep = {k: v for k, v in llm_config.items() if k not in ("architectures", "torch_dtype", "model_type")}
    with build_on(device, dtype):
        llm = LlamaForCausalLM(LlamaConfig(**keep, attn_implementation="sdpa"))
        llm.lm_head = None  # as VilaARModel.load: hidden states only
        vkeep = {k: v for k, v in vis_config.items() if k not in ("architectures", "torch_dtype", "model_type")}
        tower = SiglipVisionModel(SiglipVisionConfig(**vkeep, attn_implementation="sdpa"))
        projector = MultimodalProjector("mlp_downsample", vision_cfg["hidden_size"], llm_cfg["hidden_size"])
    for m in (llm, tower, projector):
        m.eval().requires_grad_(False)
    return VilaARModel(ckpt, tok, llm, tower, projector, dtype=dtype, device=device, source="random-full-size")


# ------------------------------------------------------------------------------------------------ inputs
def make_inputs(sizes: dict, cache: Path) -> Path:
    vids = cache / "videos"
    vids.mkdir(parents=True, exist_ok=True)
    v = sizes["video"]
    names = []
    for seed in (0, 1):
        name = f"{v['width']}x{v['height']}_{v['frames']}f_{seed}.mp4"
        if not (vids / name).is_file():
            log.info("generating %s", vids / name)
            make_video((vids / name).with_suffix(".tmp.mp4"), seed=seed, **v).rename(vids / name)
        names.append(f"videos/{name}")
    entries = [{"source_video_path": names[i % 2], "target_video_path": names[(i + 1) % 2],
                "instruction": PROMPTS[i % len(PROMPTS)] + f" (pair {i})"} for i in range(sizes["pairs"])]
    pairs = cache / "pairs.json"
    pairs.write_text(json.dumps(entries, indent=1))
    return pairs


def original_style_clip(path: Path, s: FrameSettings) -> torch.Tensor:
    """The original's reader (PyAV for OpenCV): full decode to count, decode again converting every frame."""
    with av.open(str(path)) as c:
        total = sum(1 for _ in c.decode(c.streams.video[0]))
    rate = effective_interval(total, s.frame_num, s.interval, s.skip, s.strict_count)
    wanted = frame_indices(s.frame_num, rate, s.skip)
    want, last, kept = set(wanted), wanted[-1], []
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(c.streams.video[0])):
            rgb = frame.to_ndarray(format="rgb24")
            if i in want:
                kept.append(rgb)
            if i >= last:
                break
    return frames_to_tensor(kept, s.height, s.width)


# ------------------------------------------------------------------------------------------------ timing
def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def run(sizes: dict, device: torch.device, cache: Path, tmp: Path, workers: int) -> list[tuple[str, str]]:
    from revise_prep.pipeline.step1 import run_step1
    from revise_prep.testing.tiny_models import make_tiny_tokenizer

    rows: list[tuple[str, str]] = []
    frames, repeats = sizes["frames"], sizes["repeats"]
    pairs = make_inputs(sizes, cache)
    samples, problems = parse_entries(pairs, cache)
    assert not problems, problems
    t0 = time.perf_counter()
    decoded = [([read_clip(s.source_file, frames, dtype=torch.uint8).frames,  # what the workers hand over
                 read_clip(s.target_file, frames, dtype=torch.uint8).frames], s.prompt) for s in samples]
    rows.append(("decode (our reader, 1 process), s/sample", f"{(time.perf_counter() - t0) / len(samples):.3f}"))
    clip = decoded[0][0][0].permute(1, 0, 2, 3)[None]

    t0 = time.perf_counter()
    vae = build_vae(sizes["vae"], device, torch.float32)
    vae16 = build_vae(sizes["vae"], device, torch.bfloat16)
    vae16.model.load_state_dict({k: v.to(torch.bfloat16) for k, v in vae.model.state_dict().items()})
    t5 = build_t5(sizes["t5"], device, make_tiny_tokenizer(tmp / "tokenizer"), sizes["text_len"])
    log.info("VAE + umT5 built in %.1f s", time.perf_counter() - t0)

    reset_peak(device)
    s_vae32 = timed(lambda: vae.encode(clip), device, repeats)
    mem_vae32 = peak_gib(device)
    reset_peak(device)
    s_vae16 = timed(lambda: vae16.encode(clip), device, repeats)
    mem_vae16 = peak_gib(device)
    d16 = (vae16.encode(clip) - vae.encode(clip)).abs()
    s_t5 = timed(lambda: t5.encode([samples[0].prompt]), device, repeats)
    rows += [(f"VAE fp32, s/clip ({frames.frame_num}x{frames.height}x{frames.width})", f"{s_vae32:.3f}"),
             ("VAE bf16, s/clip", f"{s_vae16:.3f}"),
             ("VAE bf16 vs fp32 latent max / mean abs diff", f"{d16.max().item():.3g} / {d16.mean().item():.3g}"),
             ("umT5 (bf16), s/prompt", f"{s_t5:.3f}")]
    del vae16

    def pure():
        for videos, prompt in decoded:
            for v in videos:
                vae.encode(v.permute(1, 0, 2, 3)[None])
            t5.encode([prompt])
        sync(device)

    def pipeline(w: int, k: int):
        out = tmp / f"out_w{w}_{k}"
        shutil.rmtree(out, ignore_errors=True)  # fresh folder: resume would skip the work
        run_s = RunSettings(input=str(pairs), output_dir=str(out), video_root=str(cache), num_workers=w, progress=False)
        models = ModelSettings(ckpt_dir="random", device=str(device), text_len=sizes["text_len"])
        summary = run_step1(run_s, frames, models, loaded=(vae, t5))
        assert summary and summary["by_status"].get("done") == len(samples), summary
        shutil.rmtree(out, ignore_errors=True)

    def original():
        for s in samples:
            videos = [original_style_clip(s.source_file, frames), original_style_clip(s.target_file, frames)]
            for v in videos:
                vae.encode(v.permute(1, 0, 2, 3)[None].float())
            t5.encode([s.prompt])
        sync(device)

    if device.type == "cuda":
        pure()  # warm-up (cudnn autotune, allocator)
    n = len(samples)
    t_pure, t_pipe, t_orig = [], [], []
    reset_peak(device)
    for k in range(repeats):  # interleaved
        for fn, acc in ((pure, t_pure), (lambda: pipeline(workers, k), t_pipe), (original, t_orig)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    mem_step1 = peak_gib(device)
    r_pure, r_pipe, r_orig = (n / statistics.median(t) for t in (t_pure, t_pipe, t_orig))
    rows += [("pure model (pre-decoded, VAE fp32 + umT5), samples/s", f"{r_pure:.3f}"),
             (f"step-1 pipeline (run_step1, {workers} workers, VAE fp32), samples/s", f"{r_pipe:.3f}"),
             ("original-style loop (sync full decode x2, fp32, batch 1), samples/s", f"{r_orig:.3f}"),
             ("pipeline / pure", f"{r_pipe / r_pure:.2f}"), ("pipeline / original-style", f"{r_pipe / r_orig:.2f}")]
    del vae, t5
    if device.type == "cuda":
        torch.cuda.empty_cache()

    t0 = time.perf_counter()
    vila = build_vila(sizes["llm"], sizes["vision"], device, tmp)
    log.info("VILA built in %.1f s", time.perf_counter() - t0)
    size = vila.checkpoint.image_size
    pixels = torch.rand(8, 3, size, size).mul(2).sub(1).to(torch.float16)
    reset_peak(device)
    s_vila = timed(lambda: vila.encode_pixels("vid_edit", samples[0].prompt, pixels), device, repeats)
    rows += [("VILA (fp16, 8 frames, vid_edit), s/sample", f"{s_vila:.3f}")]
    for label, mem in (("VAE fp32", mem_vae32), ("VAE bf16", mem_vae16), ("step-1 runs (VAE fp32 + umT5)", mem_step1),
                       ("VILA", peak_gib(device))):
        rows.append((f"peak GPU memory, {label}, GiB", "n/a (CPU)" if mem is None else f"{mem:.1f}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes on CPU (CI smoke; seconds)")
    ap.add_argument("--device", default=None, help="default cuda (full) / cpu (quick)")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers for the pipeline run")
    ap.add_argument("--cache", type=Path, default=None, help="folder for generated videos")
    ap.add_argument("--out", type=Path, default=None, help="write the table (markdown) here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("revise_prep").setLevel(logging.WARNING)
    sizes = QUICK if args.quick else FULL
    device = torch.device(args.device or ("cpu" if args.quick else "cuda"))
    if not args.quick and (device.type != "cuda" or not torch.cuda.is_available()):
        print("bench/gpu.py: the full benchmark needs a CUDA GPU (torch.cuda.is_available() is False here); "
              "use --quick for the tiny CPU smoke run", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    workers = args.workers if args.workers is not None else sizes["workers"]
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or (Path(tmp) / "cache" if args.quick else Path(tempfile.gettempdir()) / "revise_prep_bench" / "gpu")
        cache.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        rows = run(sizes, device, cache, Path(tmp), workers)
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    f = sizes["frames"]
    lines = [f"GPU benchmark on {dev} ({'quick, tiny sizes' if args.quick else 'full-size random-weight models'}; "
             f"{sizes['pairs']} pairs of {sizes['video']['width']}x{sizes['video']['height']} x264 videos, "
             f"{f.frame_num} frames / interval {f.interval} / {f.height}x{f.width}; median of {sizes['repeats']}; "
             f"total {time.perf_counter() - t0:.0f} s)", "", "| measure | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
