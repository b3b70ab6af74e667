"""Every ``python -m bljust.bin.<tool>`` explains itself: ``--help`` (of the tool and of each of its
subcommands) starts with the command to type, every argument says what it is, and every option
with a default shows it.

The rule for defaults (bljust/bin/help_format.py): ``(default: <value>)`` for every option, and
for a positional argument that may be left out, unless the default is None, False or "" (not
given / off), where it would read ``(default: None)``; such an option's help may say in words
what leaving it out means. Each ``main`` runs in-process with ``--help``; the parsers it builds
are recorded (``ArgumentParser.__init__`` wrapped) and their ``_actions`` checked.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import pkgutil

import pytest

import bljust.bin
from bljust.bin.help_format import HelpFormatter

TOOLS = sorted(m.name for m in pkgutil.iter_modules(bljust.bin.__path__)
               if callable(getattr(importlib.import_module(f"bljust.bin.{m.name}"), "main", None)))


def run_help(monkeypatch, tool: str, *args: str) -> tuple[str, list[argparse.ArgumentParser]]:
    """(stdout of ``main([*args, "--help"])``, every parser it built); asserts exit status 0."""
    parsers: list[argparse.ArgumentParser] = []
    init = argparse.ArgumentParser.__init__

    def recording_init(self, *a, **k):
        init(self, *a, **k)
        parsers.append(self)

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "__init__", recording_init)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
            importlib.import_module(f"bljust.bin.{tool}").main([*args, "--help"])
    assert exited.value.code in (0, None), f"{tool} {' '.join(args)} --help: exit status {exited.value.code}"
    return out.getvalue(), parsers


def should_show_default(action: argparse.Action) -> bool:
    default = action.default
    if default is None or default is False or default is argparse.SUPPRESS or (isinstance(default, str) and not default):
        return False
    return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)


def squeeze(text: str) -> str:
    """``text`` without whitespace: help wrapped at any width still contains the expanded help."""
    return "".join(text.split())


def check_parser(parser: argparse.ArgumentParser, where: str, printed: str | None) -> list[str]:
    """Problems of one parser's arguments; ``printed``: its --help output, when it was printed."""
    problems = []
    if parser.formatter_class is not HelpFormatter:
        problems.append(f"{where}: formatter_class is {parser.formatter_class.__name__}, not help_format.HelpFormatter")
    formatter = parser._get_formatter()
    for action in parser._actions:
        name = "/".join(action.option_strings) or action.metavar or action.dest
        if not (action.help or "").strip() or action.help is argparse.SUPPRESS:
            problems.append(f"{where}: {name} has no help")
            continue
        text = formatter._expand_help(action)
        if should_show_default(action) and "(default: " not in text:
            problems.append(f"{where}: {name} has default {action.default!r} but its help does not show it: {text!r}")
        for bad in ("(default: None)", "(default: False)", "(default: )"):
            if bad in text:
                problems.append(f"{where}: {name}'s help says {bad}")
        if printed is not None and squeeze(text) not in squeeze(printed):
            problems.append(f"{where}: {name}'s help is not in the --help output: {text!r}")
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if not (choice.help or "").strip():
                    problems.append(f"{where}: subcommand {choice.dest} has no help")
    return problems


def test_tools_found():
    assert {"train", "decode", "datadir", "prepare_corpus", "score"} <= set(TOOLS)
    assert "help_format" not in TOOLS


@pytest.mark.parametrize("tool", TOOLS)
def test_help(tool, monkeypatch):
    prog = f"python -m bljust.bin.{tool}"
    printed, parsers = run_help(monkeypatch, tool)
    assert printed.startswith(f"usage: {prog} "), printed.splitlines()[0] if printed else "(no output)"
    assert parsers, f"{tool}: no ArgumentParser built"
    top = parsers[0]
    assert top.prog == prog
    problems = check_parser(top, tool, printed)
    subcommands = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subcommands:
        for name, sub in action.choices.items():
            assert sub.prog == f"{prog} {name}", sub.prog
            sub_printed, _ = run_help(monkeypatch, tool, name)
            assert sub_printed.startswith(f"usage: {prog} {name} "), sub_printed.splitlines()[0]
            problems += check_parser(sub, f"{tool} {name}", sub_printed)
    assert not problems, "\n".join(problems)


def test_default_rule():
    """The formatter appends defaults under the rule above, and leaves a help naming its own alone."""
    p = argparse.ArgumentParser(prog="python -m bljust.bin.x", formatter_class=HelpFormatter)
    p.add_argument("--n", type=int, default=0, help="a count")
    p.add_argument("--name", default="x", help="a name")
    p.add_argument("--flag", action="store_true", help="a flag")
    p.add_argument("--path", help="a path")
    p.add_argument("--empty", default="", help="empty means unset")
    p.add_argument("--own", type=int, help="a number (default: as many as there are)")
    p.add_argument("file", nargs="?", default="-", help="input")
    text = p.format_help()
    flat = " ".join(text.split())
    assert "a count (default: 0)" in flat and "a name (default: x)" in flat and "input (default: -)" in flat
    assert "a flag (default" not in flat and "a path (default" not in flat and "empty means unset (default" not in flat
    assert flat.count("(default: as many as there are)") == 1
