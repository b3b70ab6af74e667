"""The help layout shared by every ``python -m bljust.bin.<tool>`` (subcommands included).

``HelpFormatter`` keeps the module docstring's line breaks (``RawDescriptionHelpFormatter``) and
ends an argument's help with ``(default: <value>)`` (``ArgumentDefaultsHelpFormatter``), under
one rule:

- an option shows its default unless the default is None, False or "": those mean "not given"
  or "off" (an unset path, a flag), and ``(default: None)`` says nothing. Where leaving such an
  option out has a meaning, its help says it in words: ``(default: stdin)``;
- a positional argument shows a default only when it may be left out (``nargs`` "?" or "*");
- a help that already names its default (``%(default)s`` or ``(default: ...)``) is left as it is.

Every parser is built as ``argparse.ArgumentParser(prog="python -m bljust.bin.<tool>",
description=__doc__, formatter_class=HelpFormatter)``, so that its usage line shows the command
to type; a subcommand's parser (``add_parser``) gets ``formatter_class=HelpFormatter`` too.
"""
from __future__ import annotations

import argparse

__all__ = ["HelpFormatter", "shows_default", "subcommands"]


def shows_default(action: argparse.Action) -> bool:
    """Whether the help of ``action`` gets ``(default: ...)`` appended (the rule above)."""
    default = action.default
    if default is argparse.SUPPRESS or default is None or default is False:
        return False
    if isinstance(default, str) and default == "":
        return False
    return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Docstring layout kept; ``(default: <value>)`` appended where ``shows_default`` says so."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if shows_default(action) and "%(default)" not in help and "(default:" not in help:
            help += " (default: %(default)s)"
        return help


def subcommands(parser: argparse.ArgumentParser, dest: str, metavar: str, help: str):
    """``parser``'s subcommands: -> command(name, help) -> the new subcommand's parser."""
    sub = parser.add_subparsers(dest=dest, required=True, metavar=metavar, help=help)
    return lambda name, help: sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
