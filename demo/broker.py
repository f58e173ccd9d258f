"""The project's one way to run a local MQTT broker: :class:`Mosquitto` (the demo, the tests and the benchmarks
use it), and the demo's fallback when mosquitto is not installed, amqtt (pure Python), bound to 127.0.0.1.

    python -m demo.broker --port 1883          # the amqtt fallback

amqtt speaks MQTT 3.1.1 only (no MQTT 5, no shared subscriptions): the demo configures the bridge for
that when it runs on this broker. amqtt is in the [dev] extra (the demo's fallback); elsewhere ``pip install amqtt==0.12.1`` adds it.
Its own default config listens on all interfaces and loads several plugins: here it gets exactly one loopback
listener and anonymous access, nothing else.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from demo.procs import free_port
from edge.contract.errors import ToolMissingError

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto")


def find_mosquitto() -> Optional[str]:
    for name in MOSQUITTO_CANDIDATES:
        path = shutil.which(name) or (name if os.path.isfile(name) else None)
        if path:
            return path
    return None


class Mosquitto:
    """A mosquitto listening on 127.0.0.1 only, with its config written into ``workdir``; started, stopped and
    SIGKILLed by pid. ``persistence`` keeps its database in ``workdir`` (restarts keep sessions); ``listener``
    adds lines to the listener (TLS files, ``require_certificate``), ``extra_conf`` global lines
    (``password_file``, ``acl_file``...)."""

    def __init__(self, workdir: Path, port: Optional[int] = None, *, persistence: bool = False,
                 listener: str = "", extra_conf: str = "", allow_anonymous: bool = True,
                 max_inflight: int = 100, log_to: str = "file"):
        self.binary = find_mosquitto()
        if self.binary is None:
            raise ToolMissingError("mosquitto is not installed: sudo apt-get install mosquitto "
                                   "(`make setup` does it when run as root)")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.persistence, self.listener, self.extra_conf = persistence, listener, extra_conf
        self.allow_anonymous, self.max_inflight, self.log_to = allow_anonymous, max_inflight, log_to
        self.log = self.workdir / "mosquitto.log"
        self.conf = self.workdir / "mosquitto.conf"
        self.proc: Optional[subprocess.Popen] = None

    def config_text(self) -> str:
        lines = [f"listener {self.port} {self.host}", *filter(None, self.listener.splitlines()),
                 f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
                 f"persistence {'true' if self.persistence else 'false'}"]
        if self.persistence:
            lines.append(f"persistence_location {self.workdir}/")
        lines += [f"log_dest {'stdout' if self.log_to == 'stdout' else 'file ' + str(self.log)}",
                  "max_queued_messages 100000", f"max_inflight_messages {self.max_inflight}"]
        if os.geteuid() == 0:      # no privilege drop: the workdir stays writable for persistence and logs
            lines.append("user root")
        return "\n".join(lines) + "\n" + self.extra_conf

    def write_conf(self) -> Path:
        self.conf.write_text(self.config_text())
        return self.conf

    @property
    def argv(self) -> list[str]:
        return [self.binary, "-c", str(self.conf)]

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        self.write_conf()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port}: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else "(no log)"

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (mosquitto saves its persistence database), SIGKILL after ``grace`` seconds."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: what a crash does (nothing saved since the last autosave)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


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
    from edge.contract.cli import ArgumentParser, run

    def body() -> int:
        p = ArgumentParser(prog="python -m demo.broker", description=__doc__.split("\n\n")[0])
        p.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
        args = p.parse_args(argv)
        logging.basicConfig(level=logging.WARNING)
        if not available():
            raise ToolMissingError("amqtt is not installed (pip install amqtt) and neither is mosquitto "
                                   "(sudo apt-get install mosquitto)")
        asyncio.run(serve(args.port))
        return 0
    return run("python -m demo.broker", body)


if __name__ == "__main__":
    sys.exit(main())
