"""float32 on CPU: T5 batching + prompt de-duplication, VAE batching and the worker count change no output bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from revise_prep.records import load_record
from revise_prep.records.layout import sidecar_of
from revise_prep.settings import FrameSettings, ModelSettings, RunSettings
from revise_prep.testing.tiny_models import make_tiny_wan_release
from revise_prep.testing.videos import make_video

FRAMES = FrameSettings(frame_num=5, interval=2, height=32, width=48)
PROMPTS = ["Make the whole scene look like it is covered in fresh snow.",
           "Replace the moving shapes with falling autumn leaves.",
           "Turn the daytime scene into night with a full moon over the lake."]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return make_tiny_wan_release(tmp_path_factory.mktemp("wan") / "Wan2.1-tiny", layout="original")


@pytest.fixture(scope="module")
def models(release):
    from revise_prep.models.umt5 import UMT5TextEncoder
    from revise_prep.models.wan_vae import WanVAE

    return (WanVAE.load(release, dtype="float32"),
            UMT5TextEncoder.load(release, dtype="float32", text_len=64))


def test_t5_batching_and_dedup_bit_identical(models):
    _, t5 = models
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[2], PROMPTS[1], PROMPTS[0], "Add falling snow slowly."]
    singles = [t5.encode([p])[0] for p in prompts]
    for batch_size in (8, 3, 1):  # one batch, several chunks, one prompt per call
        t5.batch_size = batch_size
        try:
            batched = t5.encode(prompts)
        finally:
            t5.batch_size = 8
        assert len(batched) == len(prompts)
        for p, a, b in zip(prompts, batched, singles):
            assert a.dtype == torch.float32 and torch.equal(a, b), (batch_size, p)


def test_vae_batch_bit_identical(models):
    vae, _ = models
    gen = torch.Generator().manual_seed(0)
    videos = torch.rand(3, 3, 5, 32, 48, generator=gen) * 2 - 1
    batched = vae.encode(videos)
    for i in range(videos.shape[0]):
        single = vae.encode(videos[i : i + 1].clone())
        assert torch.equal(batched[i : i + 1], single), i


def test_vae_uint8_pixels_bit_identical(models):
    """Workers hand the VAE uint8 pixels; it must encode them exactly as the normalised float clip."""
    vae, _ = models
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (2, 3, 5, 32, 48), dtype=torch.uint8, generator=gen)
    floats = pixels.to(torch.float32).div(255).sub(0.5).div(0.5)  # ToTensor + Normalize(0.5, 0.5)
    assert torch.equal(vae.encode(pixels), vae.encode(floats))
    assert torch.equal(vae.encode(pixels.permute(0, 1, 2, 4, 3).transpose(3, 4)), vae.encode(floats))


def _tensors(obj, prefix=""):
    """(key path, tensor) for every tensor in a record (lists and dicts included)."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}[{i}]")


def test_worker_count_bit_identical(tmp_path, release, models):
    from revise_prep.pipeline.step1 import run_step1

    vids = tmp_path / "videos"
    sizes = {"a": (64, 40, 14), "b": (80, 48, 12), "c": (64, 40, 16)}
    for seed, (name, (w, h, n)) in enumerate(sizes.items()):
        make_video(vids / f"{name}.mp4", frames=n, width=w, height=h, seed=seed)
    pairs = [{"source_video_path": "videos/a.mp4", "target_video_path": "videos/b.mp4", "instruction": PROMPTS[0]},
             {"source_video_path": "videos/b.mp4", "target_video_path": "videos/c.mp4", "instruction": PROMPTS[1]},
             {"source_video_path": "videos/c.mp4", "target_video_path": "videos/a.mp4", "instruction": PROMPTS[0]},
             {"video": "videos/c.mp4", "conversations": [{"from": "human", "value": "Describe"},
                                                         {"from": "gpt", "value": PROMPTS[2]}]}]
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    records = {}
    for workers in (0, 2):
        out = tmp_path / f"out_w{workers}"  # fresh folder per run: resume would skip the work
        run = RunSettings(input=str(tmp_path / "pairs.json"), output_dir=str(out), video_root=str(tmp_path),
                          num_workers=workers, progress=False)
        summary = run_step1(run, FRAMES, ModelSettings(ckpt_dir=str(release), device="cpu", vae_dtype="float32",
                                                       t5_dtype="float32", text_len=64), loaded=models)
        assert summary["by_status"]["done"] == len(pairs), summary
        listed = (sidecar_of(out) / "vae_features.txt").read_text().splitlines()
        records[workers] = {Path(p).name: load_record(p) for p in listed}
    assert records[0].keys() == records[2].keys() and len(records[0]) == len(pairs)
    for name, rec0 in records[0].items():
        rec2 = records[2][name]
        t0, t2 = dict(_tensors(rec0)), dict(_tensors(rec2))
        assert t0.keys() == t2.keys() and t0, name
        for key in t0:
            assert t0[key].dtype == t2[key].dtype and torch.equal(t0[key], t2[key]), (name, key)
        for key in ("prompt", "video_path", "frame_num"):
            assert rec0[key] == rec2[key], (name, key)
