"""The converter's error hierarchy. ``convert.cli.main`` maps these to messages and exit codes
in one place; library code raises them with a message that names what is wrong and how to fix it."""
from __future__ import annotations


class ConvertError(Exception):
    """Base class. ``exit_code`` is what ``convert-model`` returns."""
    exit_code = 1


class UsageError(ConvertError):
    """Bad command-line arguments or option combinations."""
    exit_code = 2


class ConfigError(ConvertError):
    """Unknown architecture, bad block string, bad option value."""
    exit_code = 2


class InputError(ConvertError):
    """Unreadable/empty dataset, calibration source, image, weights or cfg file."""
    exit_code = 3


class ExportError(ConvertError):
    """Conversion failed or produced a model that breaks a guarantee (e.g. float ops in int8)."""
    exit_code = 4


class OutputError(ConvertError):
    """The output location cannot be written."""
    exit_code = 5


class ToolMissingError(ConvertError):
    """An external tool (edgetpu_compiler) is not installed; the message says how to get it."""
    exit_code = 6
