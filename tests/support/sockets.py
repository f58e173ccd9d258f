"""The listening TCP sockets of a process tree (psutil), and which of them listen on every interface."""
from __future__ import annotations

import socket
from typing import NamedTuple

import psutil

WILDCARD = ("0.0.0.0", "::", "")


class Listening(NamedTuple):
    pid: int
    name: str
    ip: str
    port: int


def listening(root_pid: int) -> list[Listening]:
    """Every listening inet socket of ``root_pid`` and its descendants."""
    try:
        root = psutil.Process(root_pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in procs:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    out.append(Listening(p.pid, p.name(), c.laddr.ip, c.laddr.port))
        except psutil.Error:
            pass
    return out


def on_every_interface(sockets: list[Listening]) -> list[Listening]:
    return [s for s in sockets if s.ip in WILDCARD]


def speaks_grpc(port: int) -> bool:
    """An HTTP/2 server (gRPC) answers the client preface with a SETTINGS frame."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            head = s.recv(9)
            return len(head) == 9 and head[3] == 0x04
    except OSError:
        return False
