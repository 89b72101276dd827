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
