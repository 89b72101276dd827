"""``--config FILE`` (YAML or TOML): every option of a command, overridden by flags on the command line.

Keys are option names (``frame-num``, ``frame_num`` or the destination name); the file's values are turned
into flags placed *before* the command line's, so the command line wins (argparse keeps the last value).
A file may hold one table per command (``[vae]``, ``[ar]``, ``[run]``) and/or top-level keys for all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from revise_prep.errors import InputError


def read_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"--config {path}: {err.strerror or err}") from err
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as err:  # noqa: BLE001 - any parse error is the user's file
        raise InputError(f"--config {path}: cannot parse: {err}") from err
    if not isinstance(data, dict):
        raise InputError(f"--config {path}: expected a mapping of option names to values")
    return data


def _option_for(parser: argparse.ArgumentParser, key: str) -> argparse.Action | None:
    flag = "--" + key.replace("_", "-")
    dest = key.replace("-", "_")
    for action in parser._actions:  # noqa: SLF001 - argparse offers no public lookup
        if flag in action.option_strings or ("--" + key) in action.option_strings:
            return action
    for action in parser._actions:  # noqa: SLF001
        if action.dest == dest and action.option_strings:
            return action
    return None


def config_to_argv(parser: argparse.ArgumentParser, config: dict[str, Any], command: str, source: str) -> list[str]:
    """Flags equivalent to ``config`` for ``parser`` (the subcommand's parser)."""
    values = {k: v for k, v in config.items() if not isinstance(v, dict)}
    section = config.get(command)
    if isinstance(section, dict):
        values.update(section)
    argv: list[str] = []
    for key, value in values.items():
        action = _option_for(parser, key)
        if action is None:
            raise InputError(f"--config {source}: unknown option {key!r} for `revise-prep {command}`")
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):  # noqa: SLF001
            argv += [flag] if value else []
        elif isinstance(action, argparse._StoreFalseAction):  # noqa: SLF001
            argv += [] if value else [flag]
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(str(v) for v in value)]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def expand_config(root: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Replace ``--config FILE`` in ``argv`` by the flags it holds, placed right after the command name."""
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        return argv
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--config":
            if i + 1 >= len(argv):
                raise InputError("--config needs a file name")
            path = argv[i + 1]
            del argv[i:i + 2]
            break
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
            del argv[i]
            break
    sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    position = next((i for i, a in enumerate(argv) if a in sub.choices), None)
    if position is None:
        raise InputError("--config needs a command (e.g. `revise-prep run --config job.yaml`)")
    command = argv[position]
    extra = config_to_argv(sub.choices[command], read_config(path), command, path)
    return argv[:position + 1] + extra + argv[position + 1:]
