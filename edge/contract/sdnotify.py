"""systemd notification protocol (sd_notify) in a few lines, no dependency (the agent and the bridge use it).

systemd passes ``$NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for the abstract namespace) to a
``Type=notify`` service; the service sends datagrams like ``READY=1``, ``WATCHDOG=1``, ``STATUS=...``,
``STOPPING=1``. ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``) say how often a watchdog ping is expected.
"""
from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, env: dict | None = None):
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET")
        if addr and addr.startswith("@"):
            addr = "\0" + addr[1:]
        self.address = addr or None
        self.watchdog_s = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``"A=1\\nB=2"``; False when not running under systemd or the socket is gone."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(self.address)
                s.sendall("\n".join(fields).encode())
            return True
        except OSError:
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")
