"""Errors of the stream part, each with the exit code its CLI returns (mapped in one place: ``exit_code``)."""
from __future__ import annotations

import sys


class StreamError(Exception):
    exit_code = 1


class ConfigError(StreamError):
    """A config file is missing, unreadable or invalid; the message names the key."""
    exit_code = 2


class BrokerError(StreamError):
    """The MQTT broker refused or could not be reached."""
    exit_code = 3


class JobError(StreamError):
    """The Flink job could not be built, started or finished."""
    exit_code = 4


def report(exc: StreamError, prog: str) -> int:
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return exc.exit_code
