"""``--help`` tells the truth: every option explained, each default shown once and right, none for on/off flags."""

from __future__ import annotations

import argparse
import re

import pytest

from revise_prep.cli import COMMANDS, build_parser


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return parser, sub


def test_every_option_of_every_command_has_help():
    parser, sub = _commands()
    missing = [f"{name} {action.option_strings or action.dest}" for name, p in [("", parser), *sub.choices.items()]
               for action in p._actions  # noqa: SLF001
               if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()]
    assert not missing, missing
    assert set(sub.choices) == set(COMMANDS)
    assert all(a.help for a in sub._choices_actions)  # noqa: SLF001 - the command list


@pytest.mark.parametrize("command", COMMANDS)
def test_defaults_shown_once_and_never_for_flags(command):
    _, sub = _commands()
    p = sub.choices[command]
    for entry in re.split(r"\n  (?=-)", p.format_help()):  # one chunk per option
        entry = " ".join(entry.split())
        assert entry.count("(default") <= 1, entry  # was "(default 81) (default: 81)"
        flag = entry.split()[0].rstrip(",")
        action = next((a for a in p._actions if flag in a.option_strings), None)  # noqa: SLF001
        if action is None:
            continue
        shown = re.search(r"\(default: ([^)]*)\)", entry)
        if action.nargs == 0:  # on/off flags: "--no-progress (default: True)" was a lie
            assert shown is None, entry
        elif shown and "(default" not in action.help:  # the value the formatter shows is the value used
            assert shown.group(1) == str(action.default), entry


def test_string_default_of_target_size_parses_to_the_settings_default():
    from revise_prep.settings import FrameSettings

    parser = build_parser()
    args = parser.parse_args(["vae", "--input", "x.json", "--output-dir", "o"])
    d = FrameSettings()
    assert args.target_size == (d.height, d.width) and args.strict_count is True and args.progress is True
    args = parser.parse_args(["vae", "--input", "x.json", "--output-dir", "o", "--exact-frame-count", "--no-progress"])
    assert args.strict_count is False and args.progress is False
