"""Engines run a step's :class:`~revise_prep.pipeline.stage.Stage` over its work items, behind one interface.

``local`` (``engines/local/``: this process, or each torchrun/srun rank, with supervised decode workers)
and ``ray`` (``engines/ray.py``: a Ray Data pipeline) both plan and finish with ``engines/base.py`` and
write records with ``engines/writer.py``. An engine named ``x`` is the module ``engines/x`` exposing
``ENGINE`` (a class built from the ``--engine`` settings and the rank); adding one is that module and its
name in :data:`revise_prep.settings.ENGINE_NAMES`.
"""

from __future__ import annotations

import importlib

from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.engines.base import Engine
from revise_prep.settings import EngineSettings


def get_engine(settings: EngineSettings, rank: RankInfo | None = None) -> Engine:
    """The engine ``settings`` name, ready to run (it fails here, before anything is written, if it cannot)."""
    module = importlib.import_module(f"{__name__}.{settings.name}")
    return module.ENGINE(settings, rank)


__all__ = ["Engine", "get_engine"]
