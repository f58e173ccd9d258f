"""Errors of the edge agent, each with the exit code ``edge-agent`` returns for it (mapped in ``edge.cli``).

Exit codes: 0 ok, 1 unexpected bug, 2 bad config or command line, 3 model missing/invalid/not
matching the config, 4 interpreter or accelerator unavailable, 5 camera/source unusable (``check``),
6 broker unreachable or refused (``check``), 130 interrupted.
"""
from __future__ import annotations


class EdgeError(Exception):
    """Base class: ``str()`` is the message shown to the user, ``exit_code`` the process status."""
    exit_code = 1


class ConfigError(EdgeError):
    exit_code = 2


class SecretError(ConfigError):
    """A secret (password, key) file or systemd credential is missing or unreadable."""


class ModelError(EdgeError):
    exit_code = 3


class InterpreterError(EdgeError):
    exit_code = 4


class SourceError(EdgeError):
    exit_code = 5


class BrokerError(EdgeError):
    exit_code = 6
