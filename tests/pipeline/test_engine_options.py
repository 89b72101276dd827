"""Choosing an engine: the flags reach the settings, bad values are refused, and without Ray installed
``--engine ray`` stops in one line saying how to install it (no Ray needed for these tests)."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from revise_prep.records.layout import sidecar_of
from revise_prep.cli import build_parser, main
from revise_prep.cli.options import engine_settings, run_settings
from revise_prep.pipeline.engines.ray import INSTALL_HINT, encoder_resources
from revise_prep.settings import EngineSettings


def test_flags_reach_the_settings():
    args = build_parser().parse_args(["vae", "--input", "x.json", "--output-dir", "o", "--engine", "ray",
                                      "--ray-address", "head:6379", "--ray-gpus-per-actor", "0.5",
                                      "--ray-actors", "3", "--ray-decoded-gb", "2"])
    assert run_settings(args).engine == EngineSettings("ray", "head:6379", 0.5, 3, 2.0)
    args = build_parser().parse_args(["ar", "--data-file", "d", "--model-path", "m", "--result-folder", "r"])
    assert engine_settings(args) == EngineSettings()


@pytest.mark.parametrize("kwargs", [{"name": "spark"}, {"gpus_per_actor": 0}, {"actors": 0}, {"decoded_gb": 0}])
def test_bad_engine_settings_refused(kwargs):
    with pytest.raises(ValueError):
        EngineSettings(**kwargs)


def test_encoder_actors_per_gpu_or_cpu_share():
    assert encoder_resources(EngineSettings(), {"CPU": 64.0, "GPU": 8.0}) == ({"num_gpus": 1.0, "num_cpus": 1}, 8)
    assert encoder_resources(EngineSettings(gpus_per_actor=0.5), {"CPU": 64.0, "GPU": 8.0})[1] == 16
    assert encoder_resources(EngineSettings(), {"CPU": 16.0}) == ({"num_cpus": 1}, 4)
    assert encoder_resources(EngineSettings(actors=2), {"CPU": 3.0}) == ({"num_cpus": 1}, 2)
    assert encoder_resources(EngineSettings(actors=2), {"CPU": 2.0})[1] == 1  # a CPU is left to decoding
    assert encoder_resources(EngineSettings(actors=9), {"CPU": 64.0, "GPU": 8.0})[1] == 8  # what fits


@pytest.mark.parametrize("command", ["vae", "ar", "run"])
def test_without_ray_one_line_install_hint(command, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    (tmp_path / "pairs.json").write_text(json.dumps([]))
    (tmp_path / "step1").mkdir()
    argv = {"vae": ["vae", "--input", str(tmp_path / "pairs.json"), "--output-dir", str(tmp_path / "o")],
            "run": ["run", "--input", str(tmp_path / "pairs.json"), "--output-dir", str(tmp_path / "o"),
                    "--model-path", str(tmp_path / "vila")],
            "ar": ["ar", "--data-file", str(tmp_path / "step1"), "--model-path", str(tmp_path / "vila"),
                   "--result-folder", str(tmp_path / "o")]}[command]
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "--engine", "ray"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [INSTALL_HINT] and "\n" not in errors[0]
    assert not (tmp_path / "o").exists() and not sidecar_of(tmp_path / "o").exists()  # nothing written
