"""Shared fixtures of the VILA tests: a test-built tiny checkpoint and its loaded model (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from revise_prep.models.vila import VilaARModel
from revise_prep.testing.tiny_vila import make_tiny_vila


@pytest.fixture(scope="session")
def tiny_vila_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random VILA checkpoint in a folder whose name contains "mpt" (upstream crashes on such names)."""
    return make_tiny_vila(tmp_path_factory.mktemp("ckpt") / "prompt_mpt_model", seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_vila_dir: Path) -> VilaARModel:
    return VilaARModel.load(tiny_vila_dir)


@pytest.fixture(scope="session")
def write_video():
    """``write_video(path, num_frames, faststart=False)``: a 64x48 mpeg4 mp4 whose frame i is flat grey 12*i."""
    import av
    import numpy as np

    def _write(path: Path, num_frames: int, *, faststart: bool = False) -> Path:
        options = {"movflags": "faststart"} if faststart else {}
        with av.open(str(path), "w", options=options) as out:
            stream = out.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            stream.options = {"qscale": "2"}
            for i in range(num_frames):
                frame = np.full((48, 64, 3), (i * 12) % 256, dtype=np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        return path

    return _write
