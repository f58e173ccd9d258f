"""Fallback broker for the demo when mosquitto is not installed: amqtt (pure Python), bound to 127.0.0.1.

    python -m demo.broker --port 1883

amqtt speaks MQTT 3.1.1 only (no MQTT 5, no shared subscriptions): the demo configures the bridge for
that when it runs on this broker. amqtt is in the [dev] extra (the demo's fallback); elsewhere ``pip install amqtt==0.12.1`` adds it.
Its own default config listens on all interfaces and loads several plugins: here it gets exactly one loopback
listener and anonymous access, nothing else.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys


def available() -> bool:
    try:
        import amqtt.broker  # noqa: F401, PLC0415
        return True
    except ImportError:
        return False


async def serve(port: int) -> None:
    from amqtt.broker import Broker  # noqa: PLC0415
    config = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}", "max_connections": 100}},
              "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}
    broker = Broker(config)
    await broker.start()
    print(f"amqtt broker listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo.broker", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not available():
        print("error: amqtt is not installed (pip install amqtt) and neither is mosquitto "
              "(sudo apt-get install mosquitto)", file=sys.stderr)
        return 1
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
