"""The golden-comparison rule (``testing.exact``) and its proof on other CPU kernels than this run's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from revise_prep.testing.exact import (BOUNDS, CAPABILITIES, LOG_ENV, assert_exact, assert_within, capability,
                                       emulate, spacing)

REPO = Path(__file__).resolve().parents[1]
# One golden check per float bound, the cheapest of each (p13: the case AVX2 rounds differently from AVX-512)
FLOAT_GOLDEN = [
    "tests/models/test_wan_vae_fixtures.py::test_latents_match_original[rand_t13_40x56]",
    "tests/models/test_umt5_fixtures.py::test_embeddings_match_original",
    "tests/models/test_umt5_fixtures.py::test_bfloat16_default_is_close",
    "tests/models/vila/test_vila_fixtures.py::test_tower_projector_splice[p03]",
    "tests/models/vila/test_vila_fixtures.py::test_output[p13]",
    "tests/models/vila/test_vila_fixtures.py::test_output_with_native_pillow[p12]",
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_spacing_is_one_ulp_at_the_scale(dtype):
    np_dtype = {torch.float16: np.float16, torch.float32: np.float32}[dtype]
    for scale in (0.3, 1.0, 1.5, 3.99, 4.0, 7.9, 1000.0):
        x = np_dtype(scale)
        assert spacing(dtype, float(x)) == float(np.spacing(x)), (dtype, scale)
    assert spacing(torch.bfloat16, 4.0) == 4.0 * 2**-7 and spacing(torch.bfloat16, 3.0) == 2.0 * 2**-7
    assert spacing(torch.float32, 0.0) > 0


def test_within_counts_spacings_at_the_scale():
    expected = torch.linspace(-5.0, 5.0, 101).to(torch.float16)  # max |x| = 5: spacing 2**-8 in [4, 8)
    step = 2.0**-8
    bound = BOUNDS["vila.hidden_states"].spacings
    ok = expected.clone()
    ok[10] += bound * step
    assert assert_within("vila.hidden_states", ok, expected) == bound
    bad = expected.clone()
    bad[10] += (bound + 1) * step
    with pytest.raises(AssertionError, match="spacings"):
        assert_within("vila.hidden_states", bad, expected)
    with pytest.raises(AssertionError, match="shape"):
        assert_within("vila.hidden_states", expected[:-1], expected)
    nan = expected.clone()
    nan[3] = float("nan")
    with pytest.raises(AssertionError):
        assert_within("vila.hidden_states", nan, expected)
    with pytest.raises(KeyError, match="BOUNDS"):
        assert_within("no.such.comparison", expected, expected)


def test_exact_tells_one_bit_and_dtype_apart():
    x = torch.rand(3, 4)
    assert_exact("t", x.clone(), x)
    nudged = x.clone()
    nudged[1, 2] = torch.nextafter(nudged[1, 2], torch.tensor(2.0))
    with pytest.raises(AssertionError, match="not bit-exact"):
        assert_exact("t", nudged, x)
    with pytest.raises(AssertionError, match="dtype"):
        assert_exact("t", x.double(), x)
    u8 = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert_exact("a", u8.copy(), u8)
    with pytest.raises(AssertionError):
        assert_exact("a", u8 + 1, u8)
    with pytest.raises(AssertionError):
        assert_exact("ids", [1, 2, 3], [1, 2, 4])


def test_no_test_builds_the_fixtures_path_itself():
    """Golden data is reached only through the ``reference`` fixture, which marks the test ``fixtures``."""
    pattern = re.compile(r"""["']shared["']|fixtures["']?\s*/\s*["']reference""")
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("*.py")
                 if p.name != "conftest.py" and p != Path(__file__) and pattern.search(p.read_text(encoding="utf-8"))]
    assert not offenders, offenders


def test_float_golden_comparisons_hold_on_other_kernels(reference, tmp_path):
    """The float golden checks pass in a subprocess on the next lower capability than this run's (torch's
    ``ATEN_CPU_CAPABILITY``, oneDNN's and MKL's ISA capped alike), and every bound in BOUNDS is exercised there:
    CI on any host also runs other kernels than its best."""
    this = capability().lower()
    if this not in CAPABILITIES or this == CAPABILITIES[0]:
        pytest.skip(f"no capability below {this} to run")
    other = CAPABILITIES[CAPABILITIES.index(this) - 1]
    log = tmp_path / "exact.jsonl"
    env = {**os.environ, **emulate(other), LOG_ENV: str(log)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "fixtures",
                           *FLOAT_GOLDEN], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"{len(FLOAT_GOLDEN)} passed" in proc.stdout, proc.stdout[-1000:]  # all selected: they carry the marker
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert {r["capability"].lower() for r in rows} == {other}
    assert {r["what"] for r in rows if "bound" in r} == set(BOUNDS)
