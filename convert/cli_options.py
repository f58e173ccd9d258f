"""No ``convert-model`` option is silently ignored.

Three pieces, used by ``convert.cli``:

- :func:`given_options`: which options the user typed (not the defaults argparse filled in).
- :class:`Applies` rules, declared per subcommand with ``parser.set_defaults(applies=(...))``: an option that
  does not apply to this invocation (``--io`` on a float32 export, ``--arch`` with a trained ``--model``) is
  refused before any slow work, with the reason and what to do instead (exit 2).
- :class:`TrackedArgs`: the parsed arguments remember which options the command read. An option that was given,
  passed its rules and was still never read is a bug in the command (it should have been refused):
  :func:`unused_options` names it, the CLI prints a warning, and under ``SIGMAWATCH_STRICT_OPTIONS=1`` (the test
  suite) it is an error.

Standard library only.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable

from edge.contract.errors import UsageError

STRICT_ENV = "SIGMAWATCH_STRICT_OPTIONS"


class TrackedArgs(argparse.Namespace):
    """argparse's namespace that records the names a command reads (``args.x``, ``getattr(args, "x")``)."""

    def __getattribute__(self, name: str):
        if not name.startswith("_"):
            object.__getattribute__(self, "__dict__").setdefault("_read", set()).add(name)
        return object.__getattribute__(self, name)

    def _start_tracking(self) -> None:
        self.__dict__["_read"] = set()

    def _names_read(self) -> set[str]:
        return set(self.__dict__.get("_read", ()))


@dataclass(frozen=True)
class Applies:
    """``flags`` only apply when ``when(args)`` holds; otherwise giving one is refused with ``why``, a sentence
    formatted with the arguments as ``a`` (e.g. ``"applies to int8 exports only (this one is {a.quantization})"``)."""
    flags: tuple[str, ...]
    when: Callable[[argparse.Namespace], bool]
    why: str


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _subparsers(sub)


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    raise KeyError(command)


def option_flag(parser: argparse.ArgumentParser, dest: str) -> str:
    """The long spelling of the option that stores ``dest`` (``io_dtype`` -> ``--io``)."""
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return max(action.option_strings, key=len)
    return dest


def given_options(build_parser: Callable[[], argparse.ArgumentParser], argv: list[str]) -> set[str]:
    """The dests of the options present on the command line ``argv`` (parsed again with every default
    suppressed, so only what was typed lands in the namespace)."""
    parser = build_parser()
    for p in _subparsers(parser):
        p._defaults.clear()
        for action in p._actions:
            if action.option_strings:
                action.default = argparse.SUPPRESS
    return {dest for dest in vars(parser.parse_args(argv))
            if any(a.dest == dest and a.option_strings for p in _subparsers(parser) for a in p._actions)}


def was_given(args: argparse.Namespace, dest: str) -> bool:
    """Whether ``dest``'s option was typed on the command line (False when a handler is called directly)."""
    return dest in args.__dict__.get("_given", ())


def refuse_inapplicable(args: argparse.Namespace, given: set[str], parser: argparse.ArgumentParser) -> None:
    """Raise UsageError for the first given option whose :class:`Applies` rule does not hold."""
    for rule in getattr(args, "applies", ()) or ():
        typed = [f for f in rule.flags if any(option_flag(parser, d) == f for d in given)]
        if typed and not rule.when(args):
            raise UsageError(f"{' and '.join(typed)} {'has' if len(typed) == 1 else 'have'} no effect here: "
                             f"{rule.why.format(a=args)}; remove {'it' if len(typed) == 1 else 'them'}")


def unused_options(args: TrackedArgs, given: set[str], parser: argparse.ArgumentParser) -> list[str]:
    """The flags given on the command line that the command never read."""
    return sorted(option_flag(parser, d) for d in given - args._names_read())


def report_unused(flags: list[str], prog: str, stream) -> None:
    if not flags:
        return
    message = (f"{', '.join(flags)} {'was' if len(flags) == 1 else 'were'} given but this run did not use "
               f"{'it' if len(flags) == 1 else 'them'} (a bug in {prog}: an option that does not apply must be "
               "refused; please report it)")
    if os.environ.get(STRICT_ENV) == "1":
        raise RuntimeError(message)
    print(f"{prog}: warning: {message}", file=stream)
