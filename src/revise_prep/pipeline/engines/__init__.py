"""Engines drive a :class:`~revise_prep.pipeline.runner.Stage` over work items: ``local`` (runner.py) or ``ray``."""
