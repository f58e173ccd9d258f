"""What every sigmawatch command line shares: a parser that refuses unknown flags with exit code 2, and
:func:`run`, the one place where errors become a message on stderr and an exit code (``errors.EXIT_CODES``).

    def main(argv=None) -> int:
        return run("stream-bridge", lambda: _main(build_parser().parse_args(argv)))

Standard library only.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, NoReturn

from edge.contract.errors import EXIT_BUG, EXIT_INTERRUPTED, SigmawatchError, UsageError

log = logging.getLogger("sigmawatch")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with defaults shown in ``--help`` and usage errors raised as :class:`UsageError`
    (so ``main(argv)`` returns 2 instead of exiting, and the message comes out through :func:`run`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().rstrip()}")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and appends ``(default: X)`` to options that have a default."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or action.help is None:
            return action.help
        return super()._get_help_string(action)


def report(exc: SigmawatchError, prog: str) -> int:
    """Print ``<prog>: error: <message>`` and return the error's exit code."""
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return exc.exit_code


def run(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command's body and turn its outcome into the exit code of the table in ``errors``."""
    try:
        return int(body() or 0)
    except SigmawatchError as exc:
        return report(exc, prog)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:          # argparse's --help / --version
        return exc.code if isinstance(exc.code, int) else EXIT_BUG
    except Exception:                  # a bug: say so, with the traceback, and exit 1
        log.exception("%s: unexpected error (a bug; please report it with this traceback)", prog)
        return EXIT_BUG
