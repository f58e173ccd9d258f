"""``convert-model --help``: every option with a default shows it, in the spelling the option takes."""
from __future__ import annotations

import argparse
import copy

from edge.contract.cli import ArgumentParser, HelpFormatter


def show_default(value) -> str:
    """How a default reads on the command line: (256, 256) -> 256, (192, 256) -> 192x256, [] -> none."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) if value else "none"
    return str(value)


class DefaultsHelpFormatter(HelpFormatter):
    """Appends ``(default: X)`` to every option that has a default (0 and 0.0 included; flags that are off by
    default and options without one are left alone), unless its help already names its default."""

    @staticmethod
    def _has_default(action) -> bool:
        d = action.default
        return bool(action.option_strings) and not (d is None or d is argparse.SUPPRESS or isinstance(d, bool))

    def _format_action(self, action):
        if action.help is None and self._has_default(action):   # argparse prints no help line at all for these
            action = copy.copy(action)
            action.help = "default: " + show_default(action.default).replace("%", "%%")
        return super()._format_action(action)

    def _get_help_string(self, action):
        text = action.help or ""
        if not self._has_default(action) or "default" in text.lower():
            return text or None
        return f"{text} (default: {show_default(action.default).replace('%', '%%')})"


class ConvertArgumentParser(ArgumentParser):
    """The project's parser (usage errors -> exit 2) with :class:`DefaultsHelpFormatter`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)
