"""``sigmawatch-dashboard``: subscribe to an MQTT broker and serve the live dashboard.

    sigmawatch-dashboard --mqtt-host 127.0.0.1 --mqtt-port 1883 --port 8050
    sigmawatch-dashboard --mqtt-host broker.lan --mqtt-ca ca.crt \\
        --mqtt-username viewer --mqtt-password-file ~/.sigmawatch-pw

Listens on 127.0.0.1 unless ``--host`` says otherwise. Runs until SIGINT/SIGTERM.
With ``--homeassistant`` it also publishes Home Assistant MQTT discovery messages for every
device and class it sees, and per tracked label and zone (see ``dashboard.homeassistant``). A broker that refuses
the connection or the subscriptions ends it with exit code 6 and the broker's reason.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading

from dashboard.relay import MqttRelay
from dashboard.server import DashboardServer
from dashboard.state import DashboardState
from dashboard.view import ViewSettings
from edge.contract.cli import ArgumentParser, add_mqtt_arguments, run
from edge.contract.errors import BrokerError, OutputError, UsageError
from edge.contract.mqtt import settings_from_flags

log = logging.getLogger("sigmawatch.dashboard")

CONNECT_WAIT_S = 10.0
VIEW_FLAGS = {"--stale-after": "stale_after_s", "--forget-after": "forget_after_s", "--recent": "recent_s",
              "--history": "history_s", "--track-timeout": "track_timeout_s"}


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="sigmawatch-dashboard", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8050, help="HTTP port (0 = any free port)")
    p.add_argument("--homeassistant", nargs="?", const="homeassistant", default=None, metavar="PREFIX",
                   help="also publish Home Assistant MQTT discovery under PREFIX (default homeassistant)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level")
    g = p.add_argument_group("what the page shows (seconds)")
    for flag, field in VIEW_FLAGS.items():
        info = ViewSettings.model_fields[field]
        g.add_argument(flag, type=float, metavar="S", dest=field, default=info.default,
                       help=f"{info.description} (default %(default)g)")
    add_mqtt_arguments(p)
    return p



def view_from_flags(args) -> ViewSettings:
    values = {field: getattr(args, field) for field in VIEW_FLAGS.values()}
    try:
        return ViewSettings(**values)
    except ValueError as exc:           # pydantic's ValidationError: name the flag, not the field
        flags = {field: flag for flag, field in VIEW_FLAGS.items()}
        problems = []
        for err in exc.errors():
            field = err["loc"][0] if err["loc"] else None
            where = f"{flags[field]} {values[field]:g}: " if field in flags else ""
            problems.append(where + err["msg"].removeprefix("Value error, ").replace(
                "forget_after_s", "--forget-after").replace("stale_after_s", "--stale-after"))
        raise UsageError("; ".join(problems)) from None


def serve(args) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from_flags(args)
    state = DashboardState(settings.topic_prefix, view=view_from_flags(args))
    try:
        server = DashboardServer((args.host, args.port), state)
    except OSError as exc:
        raise OutputError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; pick another --port "
                          "(0 = any free port)") from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach this address sees the dashboard", args.host)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    relay = MqttRelay(settings, state)
    publisher = None
    if args.homeassistant:
        from dashboard.homeassistant import DiscoveryPublisher  # noqa: PLC0415
        publisher = DiscoveryPublisher(relay.client, state, discovery_prefix=args.homeassistant)
    server.start()
    relay.start()
    try:
        relay.wait_ready(CONNECT_WAIT_S)
    except BrokerError as exc:
        if relay.client.refused:        # wrong credentials or ACL: retrying cannot help
            relay.stop()
            server.stop()
            raise
        log.warning("%s; the page shows the broker as unreachable until it answers", exc)
    # One line a script can wait for (the demo and the tests read it).
    print(f"dashboard: {server.url} (MQTT {settings.url}, prefix {settings.topic_prefix})", flush=True)
    try:
        stop.wait()
    finally:
        if publisher:
            publisher.close()
        relay.stop()
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run("sigmawatch-dashboard", lambda: serve(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
