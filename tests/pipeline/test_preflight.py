"""The pre-flight's rules on their own (no models, no subprocess): videos, the size warning, hub-id paths."""

from __future__ import annotations

import logging

import pytest

from revise_prep.errors import InputError
from revise_prep.inputs import Sample
from revise_prep.pipeline import preflight
from revise_prep.settings import FrameSettings, ModelSettings


def _samples(n: int, root: str) -> list[Sample]:
    return [Sample(i, f"v/{i}s.mp4", f"v/{i}t.mp4", "an instruction long enough", video_root=root) for i in range(n)]


def test_videos_all_missing_stops_unless_records_exist(tmp_path, caplog):
    samples = _samples(3, str(tmp_path / "roott"))
    with pytest.raises(InputError) as err:
        preflight.check_videos(samples, str(tmp_path / "roott"), tmp_path / "out")
    assert str(err.value) == (f"no video of the input exists (6 (all) checked), e.g. sample #0 (v/0t.mp4): source: "
                              f"'v/0s.mp4' resolves to {tmp_path / 'roott' / 'v' / '0s.mp4'} (--video-root "
                              f"{tmp_path / 'roott'}); check --video-root (or the folder you run from)")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "0t.pkl").write_bytes(b"")  # a resume: the records may need no video
    with caplog.at_level(logging.WARNING):
        preflight.check_videos(samples, str(tmp_path / "roott"), tmp_path / "out")
    assert "6 of the 6 (all) videos checked do not exist" in caplog.text


def test_a_slow_filesystem_gets_an_even_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "VIDEOS_SECONDS", 0.0)  # every chunk "too slow": stop once enough are checked
    monkeypatch.setattr(preflight, "VIDEOS_AT_LEAST", 5)
    with pytest.raises(InputError, match=r"\(20 \(an even sample of 2000\) checked\)"):
        preflight.check_videos(_samples(1000, str(tmp_path)), str(tmp_path), tmp_path / "out")


def test_target_size_warning(caplog):
    with caplog.at_level(logging.WARNING):
        preflight.check_frames(FrameSettings(height=480, width=840))
        preflight.check_frames(FrameSettings(height=480, width=832))  # a multiple of 16: nothing
        preflight.check_frames(FrameSettings(height=480, width=832, buckets=((480, 832),)))
    [line] = [r.getMessage() for r in caplog.records]
    assert line == ("--target-size 480,840 is not a multiple of 16: the latents will be 60x105 (the VAE divides each "
                    "side by 8, rounding down), and Wan's transformer patches latents 2x2 (an odd latent side loses "
                    "its last row or column there)")


def test_checkpoint_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpts" / "Wan2.1-T2V-1.3B").mkdir(parents=True)
    with pytest.raises(InputError) as err:  # relative, one letter off: looks like a hub id
        preflight.check_step1_models(ModelSettings(ckpt_dir="ckpts/Wan2.1-T2V-1.4B"))
    assert str(err.value) == (f"--ckpt-dir ckpts/Wan2.1-T2V-1.4B: no such local folder: {tmp_path}/ckpts/"
                              f"Wan2.1-T2V-1.4B (did you mean {tmp_path}/ckpts/Wan2.1-T2V-1.3B?); as a hub id: not in "
                              "the local hub cache, and HF_HUB_OFFLINE is set (the hub was not asked)")
    with pytest.raises(InputError, match=r"^--vae-path /no/such: no such local folder: /no/such \(and not a hub"):
        preflight.check_step1_models(ModelSettings(ckpt_dir=str(tmp_path / "ckpts"), vae_path="/no/such"))
    with pytest.raises(InputError) as err:  # an existing folder without a VAE: what was looked for, and where
        preflight.check_step1_models(ModelSettings(ckpt_dir=str(tmp_path / "ckpts")))
    assert str(err.value).startswith(f"--ckpt-dir {tmp_path / 'ckpts'}: no VAE found in {tmp_path / 'ckpts'}: looked "
                                     "for Wan2.1_VAE.pth") and str(err.value).endswith("; --vae-path gives it")
    with pytest.raises(InputError, match="no checkpoint given"):
        preflight.check_step1_models(ModelSettings())
