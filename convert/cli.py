"""``convert-model``: one entry point, subcommands registered by the classifier and detector modules,
and the one place where errors become messages and exit codes.

Exit codes: 0 ok, 1 unexpected error, 2 usage/config, 3 input, 4 export, 5 output, 6 tool missing,
130 interrupted (see convert.errors).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from convert import __version__
from convert.errors import ConvertError, InputError, ToolMissingError

COMMAND_MODULES = ("convert.commands_classify", "convert.detection.commands", "convert.prune.commands")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convert-model", description="Build, train and export sigmawatch models "
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
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:           # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    _quiet_tensorflow(args.verbose)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConvertError as exc:
        print(f"convert-model {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("convert-model: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # errors from edge/ modules shared with the agent, mapped here too
        mapped = _map_foreign(exc)
        if mapped is None:
            raise
        print(f"convert-model {args.command}: error: {mapped}", file=sys.stderr)
        return mapped.exit_code


def _map_foreign(exc: Exception) -> ConvertError | None:
    from edge.model_metadata import ModelMetadataError
    from edge.runtime import RuntimeUnavailableError
    if isinstance(exc, ModelMetadataError):
        return InputError(str(exc))
    if isinstance(exc, RuntimeUnavailableError):
        return ToolMissingError(str(exc))
    if isinstance(exc, FileNotFoundError):
        return InputError(str(exc))
    return None


if __name__ == "__main__":
    sys.exit(main())
