"""Shared test fixtures: the golden reference folder (skipped with a reason when absent); every test that uses it
carries the ``fixtures`` marker, so ``pytest -m fixtures`` selects exactly the golden comparisons."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Idle OpenMP threads sleep instead of spinning (read when torch loads, so set before any test imports it; the
# subprocesses the tests start inherit it): two test processes share this machine's cores with the runs they
# start, and spinning threads took CPU from the others (two test modules at once: 46 s instead of 57 s of wall,
# 73 s instead of 94 s of CPU). The wait policy changes no result, only how idle threads wait.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REVISE_PREP_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "fixtures" / "reference"


def pytest_collection_modifyitems(items) -> None:
    """Mark every test that reads ``../shared/fixtures`` (through ``reference``, directly or via other fixtures)."""
    for item in items:
        if "reference" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.fixtures)


@pytest.fixture(scope="session")
def reference() -> Path:
    """Path of ``../shared/fixtures/reference``; skips the test with a visible reason when absent."""
    if not (REFERENCE / "README.md").is_file():
        pytest.skip(f"golden fixtures not found at {REFERENCE} (set REVISE_PREP_SHARED to the shared/ folder)")
    return REFERENCE


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """The video zoo (``revise_prep.testing.zoo``): name -> file, written once per test session (~2 s)."""
    from revise_prep.testing.zoo import build_zoo

    return build_zoo(tmp_path_factory.mktemp("zoo"))
