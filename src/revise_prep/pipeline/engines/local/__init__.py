"""The local engine (``--engine local``): runner.py drives the loop of each rank, workers.py the supervised decoders."""

from revise_prep.pipeline.engines.local.runner import ENGINE, LocalEngine, run_stage

__all__ = ["ENGINE", "LocalEngine", "run_stage"]
