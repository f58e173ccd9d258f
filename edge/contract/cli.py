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
        # identity, not ==: 0 == False, so `in (None, False)` would hide a default of 0 (e.g. --mqtt-port 0)
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS \
                or action.help is None:
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


# --------------------------------------------------------------------------- the broker flags
def add_mqtt_arguments(parser: argparse.ArgumentParser) -> None:
    """The broker flags, spelled the same in every command; each overrides the config's ``mqtt.*`` key."""
    g = parser.add_argument_group("MQTT broker (override the config's mqtt section)")
    g.add_argument("--mqtt-host", metavar="HOST", help="broker host (mqtt.host; default 127.0.0.1)")
    g.add_argument("--mqtt-port", metavar="PORT", type=int, help="broker port (mqtt.port; default 1883, 8883 with TLS)")
    g.add_argument("--mqtt-username", metavar="USER", help="user name (mqtt.username)")
    g.add_argument("--mqtt-password-file", metavar="FILE", help="file whose first line is the password "
                   "(mqtt.password_file; never pass a password on the command line)")
    g.add_argument("--mqtt-tls", action="store_true", help="connect with TLS, trusting the system's CAs (mqtt.tls)")
    g.add_argument("--mqtt-ca", metavar="FILE", help="CA certificate the broker's certificate is signed by "
                   "(mqtt.tls.ca_file; implies --mqtt-tls)")
    g.add_argument("--mqtt-cert", metavar="FILE", help="client certificate for mutual TLS (mqtt.tls.cert_file)")
    g.add_argument("--mqtt-key", metavar="FILE", help="client key for mutual TLS (mqtt.tls.key_file)")
    g.add_argument("--mqtt-tls-insecure", action="store_true",
                   help="do not check the broker's host name (mqtt.tls.insecure; testing only)")
    g.add_argument("--mqtt-client-id", metavar="ID", help="MQTT client id (mqtt.client_id)")
    g.add_argument("--mqtt-protocol", choices=["5", "3.1.1"], help="MQTT protocol version (mqtt.protocol; default 5)")
    g.add_argument("--topic-prefix", metavar="PREFIX", help="topic prefix (mqtt.topic_prefix; default sigmawatch)")


def mqtt_overrides(args: argparse.Namespace) -> dict:
    """The ``mqtt`` keys the flags of :func:`add_mqtt_arguments` set (nested ``tls`` mapping included)."""
    out = {key: getattr(args, flag) for key, flag in (
        ("host", "mqtt_host"), ("port", "mqtt_port"), ("username", "mqtt_username"),
        ("password_file", "mqtt_password_file"), ("client_id", "mqtt_client_id"), ("protocol", "mqtt_protocol"),
        ("topic_prefix", "topic_prefix")) if getattr(args, flag, None) is not None}
    tls = {key: getattr(args, flag) for key, flag in (
        ("ca_file", "mqtt_ca"), ("cert_file", "mqtt_cert"), ("key_file", "mqtt_key")) if getattr(args, flag, None)}
    if getattr(args, "mqtt_tls_insecure", False):
        tls["insecure"] = True
    if tls or getattr(args, "mqtt_tls", False):
        out["tls"] = tls
    return out


def merge_mqtt(section: dict | None, overrides: dict) -> dict:
    """A config's ``mqtt`` mapping with the flags' overrides applied (``tls`` merged key by key)."""
    merged = dict(section or {})
    for key, value in overrides.items():
        if key == "tls":
            merged["tls"] = {**(merged.get("tls") or {}), **value}
        else:
            merged[key] = value
    return merged
