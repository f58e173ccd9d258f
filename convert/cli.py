"""``convert-model``: one entry point, subcommands registered by the classifier and detector modules,
and the one place where errors become messages and exit codes.

Exit codes: the table in ``edge.contract.errors`` (2 usage/config, 3 input, 4 tool missing, 7 output, 8 export
failed, 130 interrupted), mapped by ``edge.contract.cli.run``.

Options: every option a command is given either has an effect or is refused (``convert.cli_options``); help
shows every default (``convert.cli_help``). Console: TensorFlow's and the interpreter's own output is hidden
without ``-v`` (``convert.console``).
"""
from __future__ import annotations

import importlib
import logging
import sys

from convert import __version__
from convert.cli_help import ConvertArgumentParser
from convert.cli_options import (
    TrackedArgs,
    command_parser,
    given_options,
    refuse_inapplicable,
    report_unused,
    unused_options,
)
from convert.console import hide_library_noise, quiet_native_output
from edge.contract.cli import run
from edge.contract.errors import FailedError, InputError, SigmawatchError, UsageError

PROG = "convert-model"
COMMAND_MODULES = ("convert.commands_classify", "convert.detection.commands", "convert.distill.commands",
                   "convert.prune.commands")


def build_parser() -> ConvertArgumentParser:
    parser = ConvertArgumentParser(prog=PROG, description="Build, train and export sigmawatch models "
                                   "(classifiers and Gaussian YOLOv3 detectors) to TFLite.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's and the TFLite interpreter's own log lines and warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ConvertArgumentParser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
            module.register(sub)
        except ModuleNotFoundError as exc:
            if exc.name == name:      # an optional command module that is not installed
                continue
            if name == COMMAND_MODULES[0]:
                raise
            _unavailable(name, exc)
        except Exception as exc:      # one broken command module must not take the others down
            if name == COMMAND_MODULES[0]:
                raise
            _unavailable(name, exc)
    return parser


def _unavailable(name: str, exc: Exception) -> None:
    print(f"{PROG}: warning: the commands of {name} are unavailable ({type(exc).__name__}: {exc})",
          file=sys.stderr)


def main(argv=None) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv, namespace=TrackedArgs())
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return UsageError.exit_code
    hide_library_noise(args.verbose)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    sub = command_parser(parser, args.command)
    given = given_options(build_parser, argv) - {"verbose"}
    refuse_inapplicable(args, given, sub)
    args.__dict__["_given"] = frozenset(given)
    args._start_tracking()
    with quiet_native_output(not args.verbose) as native:
        try:
            code = int(args.func(args) or 0)
        except FileNotFoundError as exc:   # a path a library opened directly
            raise InputError(str(exc)) from None
        except SigmawatchError as exc:      # the message says what is wrong; the libraries' log may say why
            if isinstance(exc, FailedError):
                _point_at_native_log(native)
            raise
        except KeyboardInterrupt:
            raise
        except BaseException:                # a bug: the traceback follows, with what TensorFlow said
            _point_at_native_log(native)
            raise
    if code == 0:
        report_unused(unused_options(args, given, sub), PROG, sys.stderr)
    return code


def _point_at_native_log(native) -> None:
    """A failed command keeps TensorFlow's own output of the run: say where it is."""
    tail = native.tail()
    if tail:
        native.keep = True
        print(f"{PROG}: TensorFlow's own output of this run is in {native.path} (last lines below; rerun with -v "
              f"to see it as it happens):\n{tail}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
