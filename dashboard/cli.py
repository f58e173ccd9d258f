"""``sigmawatch-dashboard``: subscribe to an MQTT broker and serve the live dashboard.

    sigmawatch-dashboard --mqtt-host 127.0.0.1 --mqtt-port 1883 --port 8050
    sigmawatch-dashboard --mqtt-host broker.lan --mqtt-port 8883 --mqtt-tls --mqtt-ca ca.crt \\
        --mqtt-username viewer --mqtt-password-file ~/.sigmawatch-pw

Listens on 127.0.0.1 unless ``--host`` says otherwise. Runs until SIGINT/SIGTERM.
With ``--homeassistant`` it also publishes Home Assistant MQTT discovery messages for every
device and class it sees (see ``dashboard.homeassistant``).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from dashboard.relay import BrokerOptions, MqttRelay
from dashboard.server import DashboardServer
from dashboard.state import DashboardState

log = logging.getLogger("sigmawatch.dashboard")

EXIT_OK, EXIT_USAGE, EXIT_BIND = 0, 2, 3


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("MQTT broker")
    g.add_argument("--mqtt-host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    g.add_argument("--mqtt-port", type=int, default=None, help="broker port (default 1883, 8883 with --mqtt-tls)")
    g.add_argument("--mqtt-username", default=os.environ.get("SIGMAWATCH_MQTT_USERNAME"))
    g.add_argument("--mqtt-password-file", help="file whose first line is the password "
                   "(or set SIGMAWATCH_MQTT_PASSWORD; never pass passwords on the command line)")
    g.add_argument("--mqtt-tls", action="store_true", help="connect with TLS")
    g.add_argument("--mqtt-ca", help="CA certificate file for TLS (default: system CAs)")
    g.add_argument("--mqtt-cert", help="client certificate file for TLS")
    g.add_argument("--mqtt-key", help="client key file for TLS")
    g.add_argument("--mqtt-tls-insecure", action="store_true", help="do not check the broker's host name")
    g.add_argument("--prefix", default="sigmawatch", help="topic prefix (default sigmawatch)")


def broker_options(args: argparse.Namespace) -> BrokerOptions:
    password = os.environ.get("SIGMAWATCH_MQTT_PASSWORD")
    if args.mqtt_password_file:
        try:
            with open(args.mqtt_password_file, encoding="utf-8") as fh:
                password = fh.readline().rstrip("\n")
        except OSError as exc:
            raise ValueError(f"cannot read --mqtt-password-file {args.mqtt_password_file!r}: {exc}") from exc
    port = args.mqtt_port if args.mqtt_port is not None else (8883 if args.mqtt_tls else 1883)
    return BrokerOptions(host=args.mqtt_host, port=port, username=args.mqtt_username, password=password,
                         tls=args.mqtt_tls, ca_file=args.mqtt_ca, cert_file=args.mqtt_cert,
                         key_file=args.mqtt_key, tls_insecure=args.mqtt_tls_insecure)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sigmawatch-dashboard", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8050, help="HTTP port (default 8050; 0 = any free port)")
    p.add_argument("--homeassistant", nargs="?", const="homeassistant", default=None, metavar="PREFIX",
                   help="also publish Home Assistant MQTT discovery under PREFIX (default homeassistant)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_broker_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options = broker_options(args)
        state = DashboardState(args.prefix)
    except ValueError as exc:
        print(f"sigmawatch-dashboard: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        server = DashboardServer((args.host, args.port), state)
    except OSError as exc:
        print(f"sigmawatch-dashboard: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
              "pick another --port (0 = any free port)", file=sys.stderr)
        return EXIT_BIND
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach this address sees the dashboard", args.host)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    relay = MqttRelay(options, state)
    publisher = None
    if args.homeassistant:
        from dashboard.homeassistant import DiscoveryPublisher  # noqa: PLC0415
        publisher = DiscoveryPublisher(relay.client, state, discovery_prefix=args.homeassistant)
    server.start()
    relay.start()
    # One line a script can wait for (the demo and the tests read it).
    print(f"dashboard: {server.url} (MQTT {options.url}, prefix {args.prefix})", flush=True)
    try:
        stop.wait()
    finally:
        if publisher:
            publisher.close()
        relay.stop()
        server.stop()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
