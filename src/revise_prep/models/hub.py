"""Ask the Hugging Face hub about a checkpoint id before anything is downloaded: the local cache first, then
one request with a timeout (no retries), or nothing at all when ``HF_HUB_OFFLINE`` is set.

The loaders download through ``huggingface_hub``, which retries a failing connection five times with back-off
(about 50 s of log lines for a misspelled local path that happens to look like ``org/name``); asking once
here first turns that into one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HubAnswer", "ask", "offline"]

TIMEOUT = 10.0  # seconds for the one request


@dataclass(frozen=True)
class HubAnswer:
    """Whether the repo is there, the files it holds (relative paths), and in words what the hub said."""

    found: bool
    files: tuple[str, ...] = ()
    detail: str = ""


def offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it (1/ON/YES/TRUE)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def cached_files(repo_id: str) -> tuple[str, ...] | None:
    """The files of ``repo_id``'s newest snapshot in the local hub cache, or None when it has none."""
    from huggingface_hub import constants

    snapshots = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    try:
        newest = max(snapshots.iterdir(), key=lambda p: p.stat().st_mtime)
    except (OSError, ValueError):
        return None
    return tuple(str(p.relative_to(newest)) for p in newest.rglob("*") if p.is_file())


def ask(repo_id: str, timeout: float = TIMEOUT) -> HubAnswer:
    """What the cache, or else the hub (one request), knows of model repo ``repo_id``."""
    files = cached_files(repo_id)
    if files:
        return HubAnswer(True, files, "in the local hub cache")
    if offline():
        return HubAnswer(False, detail="not in the local hub cache, and HF_HUB_OFFLINE is set (the hub was not asked)")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        info = HfApi().model_info(repo_id, timeout=timeout)
    except GatedRepoError:
        return HubAnswer(False, detail="the hub answered: a gated repository (accept its terms on huggingface.co, "
                                       "then `hf auth login`)")
    except RepositoryNotFoundError:
        return HubAnswer(False, detail="the hub answered: no such repository (or a private one, and no token)")
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", "?")
        return HubAnswer(False, detail=f"the hub answered HTTP {status}")
    except Exception as err:  # noqa: BLE001 - no network, DNS, proxy, timeout: all say the same to the user
        return HubAnswer(False, detail=f"the hub could not be reached ({type(err).__name__}: {err})")
    return HubAnswer(True, tuple(s.rfilename for s in info.siblings or ()), "found on the hub")
