"""One error hierarchy and one exit-code table for every sigmawatch command.

``convert-model``, ``edge-agent``, ``stream-bridge``, ``stream-job``, ``sigmawatch-dashboard``,
``python -m dashboard.homeassistant`` and ``sigmawatch-demo`` all end through :func:`edge.contract.cli.run`,
which prints ``<prog>: error: <message>`` and returns the error's ``exit_code``. Library code raises the
most specific class with a message that names what is wrong and how to fix it.

=====  ==============================  ==========================================================================
code   class                           meaning
=====  ==============================  ==========================================================================
0      -                               success
1      (any other exception)           a bug: the traceback is printed
2      UsageError, ConfigError         bad command line or configuration (a restart cannot fix it)
3      InputError (ModelError)         a model, dataset, image or file is missing, corrupt or does not match
4      UnavailableError                a runtime part is missing: interpreter, accelerator, external tool, Java
       (InterpreterError, ToolMissingError)
5      SourceError                     the camera or video source cannot be used
6      BrokerError                     the MQTT broker is unreachable, refused the connection or a subscription
7      OutputError                     an output cannot be written, or a port cannot be listened on
8      FailedError                     the work itself failed: an export, the Flink job, the demo chain
       (ExportError, JobError, DemoError)
130    -                               interrupted (SIGINT / Ctrl-C)
=====  ==============================  ==========================================================================

``systemd/*.service`` list the codes a restart cannot fix (2 and 3) in ``RestartPreventExitStatus``.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_INTERRUPTED = 130


class SigmawatchError(Exception):
    """Base class: ``str()`` is the message shown to the user, ``exit_code`` the process status."""
    exit_code = EXIT_BUG


class UsageError(SigmawatchError):
    """Bad command-line arguments or option combinations."""
    exit_code = 2


class ConfigError(SigmawatchError):
    """A configuration file or value is invalid; the message names the key."""
    exit_code = 2


class SecretError(ConfigError):
    """A secret (password, key) file or systemd credential is missing or unreadable."""


class InputError(SigmawatchError):
    """A model, dataset, image, weights or cfg file is missing, unreadable, corrupt or inconsistent."""
    exit_code = 3


class ModelError(InputError):
    """A model is missing, invalid, or does not match its configuration or metadata."""


class UnavailableError(SigmawatchError):
    """A runtime part this command needs is not available here."""
    exit_code = 4


class InterpreterError(UnavailableError):
    """No TFLite interpreter package, or the requested accelerator (Edge TPU) cannot be used."""


class ToolMissingError(UnavailableError):
    """An external tool (edgetpu_compiler, Java) is not installed; the message says how to get it."""


class SourceError(SigmawatchError):
    """The camera or video source cannot be opened or read."""
    exit_code = 5


class BrokerError(SigmawatchError):
    """The MQTT broker cannot be reached, or it refused the connection or a subscription."""
    exit_code = 6


class OutputError(SigmawatchError):
    """An output location cannot be written, or a listening port cannot be bound."""
    exit_code = 7


class FailedError(SigmawatchError):
    """The work itself failed (an export, the Flink job, the demo chain)."""
    exit_code = 8


class ExportError(FailedError):
    """Conversion failed or produced a model that breaks a guarantee (e.g. float ops in int8)."""


class JobError(FailedError):
    """The Flink job could not be built, started or finished."""


class DemoError(FailedError):
    """A component of the demo chain could not be started or failed while running."""


#: code -> the classes that return it (the README's table is generated from the same data in a test)
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_BUG: "a bug (traceback printed)",
    UsageError.exit_code: "bad command line or configuration",
    InputError.exit_code: "a model, dataset, image or file is missing, corrupt or does not match",
    UnavailableError.exit_code: "interpreter, accelerator, external tool or Java not available",
    SourceError.exit_code: "camera or video source unusable",
    BrokerError.exit_code: "MQTT broker unreachable or refused",
    OutputError.exit_code: "output not writable or port not bindable",
    FailedError.exit_code: "the export, job or demo failed",
    EXIT_INTERRUPTED: "interrupted",
}
