"""The exact record layouts training reads (SPEC §Step 1 and §Step 2), plus our non-tensor ``meta``."""

from __future__ import annotations

from typing import Any

import torch

from revise_prep import FORMAT_VERSION

STEP1_KEYS = ("latent_feature", "latent_feature_tgt", "prompt", "text_emb", "video_path", "frame_num")
STEP1_CAPTION_KEYS = tuple(k for k in STEP1_KEYS if k != "latent_feature_tgt")
AR_KEYS = ("video_path_tgt", "prompt", "latent_features", "latent_feature_tgt", "t5_emb", "frame_num",
           "vlm_last_hidden_states")
AR_CAPTION_KEYS = tuple(k for k in AR_KEYS if k != "latent_feature_tgt")
META_KEY = "meta"


def _own(t: torch.Tensor) -> torch.Tensor:
    """A compact CPU copy: pickling a view would store its whole (batch / padded) storage. A GPU tensor stays
    where it is: the local engine copies it into an exact-size host buffer without waiting for it."""
    if t.device.type != "cpu":
        return t.detach()
    return t.detach().contiguous().clone()


def step1_record(*, latent: torch.Tensor, latent_tgt: torch.Tensor | None, prompt: str,
                 text_emb: torch.Tensor, video_path: str, frame_num: int, meta: dict) -> dict[str, Any]:
    """Build a step-1 record: exactly the original's keys (no target latent for captions) plus ``meta``."""
    record: dict[str, Any] = {"latent_feature": _own(latent)}
    if latent_tgt is not None:
        record["latent_feature_tgt"] = _own(latent_tgt)
    record.update(prompt=prompt, text_emb=[_own(text_emb)], video_path=video_path, frame_num=int(frame_num))
    record[META_KEY] = {"format_version": FORMAT_VERSION, "step": "vae", **meta}
    return record


def ar_record(step1: dict[str, Any], vlm_last_hidden_states: torch.Tensor, meta: dict, *,
              video_path: str | None = None) -> dict[str, Any]:
    """Build the final (step-2) record from a step-1 record (ours or the original's six keys); ``video_path``:
    the source video as step 2 read it (default: the step-1 record's)."""
    record: dict[str, Any] = {
        # the original stores the *source* path under this name
        "video_path_tgt": step1["video_path"] if video_path is None else video_path,
        "prompt": step1["prompt"],
        "latent_features": step1["latent_feature"],
    }
    if "latent_feature_tgt" in step1:
        record["latent_feature_tgt"] = step1["latent_feature_tgt"]
    record.update(t5_emb=step1["text_emb"], frame_num=step1["frame_num"],
                  vlm_last_hidden_states=_own(vlm_last_hidden_states))
    record[META_KEY] = {**step1.get(META_KEY, {}), "format_version": FORMAT_VERSION, "step": "ar", **meta}
    return record


def missing_keys(record: dict[str, Any], step: str) -> list[str]:
    """Keys a record of ``step`` ("vae" or "ar") lacks (a caption record lacks the target latent)."""
    keys = STEP1_CAPTION_KEYS if step == "vae" else AR_CAPTION_KEYS
    return [k for k in keys if k not in record]
