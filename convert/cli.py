"""``convert-model``: one entry point, subcommands registered by the classifier and detector modules,
and the one place where errors become messages and exit codes.

Exit codes: the table in ``edge.contract.errors`` (2 usage/config, 3 input, 4 tool missing, 7 output, 8 export
failed, 130 interrupted), mapped by ``edge.contract.cli.run``.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

from convert import __version__
from edge.contract.cli import ArgumentParser, run
from edge.contract.errors import InputError, UsageError

COMMAND_MODULES = ("convert.commands_classify", "convert.detection.commands", "convert.distill.commands",
                   "convert.prune.commands")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="convert-model", description="Build, train and export sigmawatch models "
                                     "(classifiers and Gaussian YOLOv3 detectors) to TFLite.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow's own log lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
    print(f"convert-model: warning: the commands of {name} are unavailable ({type(exc).__name__}: {exc})",
          file=sys.stderr)


def _quiet_tensorflow(verbose: bool) -> None:
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


def main(argv=None) -> int:
    return run("convert-model", lambda: _main(argv))


def _main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return UsageError.exit_code
    _quiet_tensorflow(args.verbose)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except FileNotFoundError as exc:   # a path a library opened directly
        raise InputError(str(exc)) from None


