"""Is this device's clock synchronized? The capture timestamps of every frame come from it.

A Raspberry Pi has no real-time clock: until NTP (systemd-timesyncd, chrony) has synchronized it after boot, its
clock can be anywhere. The kernel knows: ``adjtimex(2)`` (``ntp_adjtime``) reports ``STA_UNSYNC`` and returns
``TIME_ERROR`` while no time daemon has disciplined the clock, plus the daemon's estimated and maximum error.
The agent reports this in its status message and logs a warning while it stamps frames with an unsynchronized
clock; the stream job judges every frame against the bridge's clock anyway (``clock_skew_tolerance_s``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Optional

TIME_ERROR = 5          # ntp_adjtime's return value while the clock is not synchronized
STA_UNSYNC = 0x0040


class _Timex(ctypes.Structure):
    """``struct timex`` of Linux (64-bit longs: aarch64 and x86_64), up to the fields read here, padded."""
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
                ("_rest", ctypes.c_long * 20)]


def clock_status(libc: Optional[ctypes.CDLL] = None) -> dict:
    """``{"synchronized": bool | None, "max_error_s": float | None, "est_error_s": float | None, "how": str}``;
    ``synchronized`` is None where the kernel cannot be asked (not Linux)."""
    if not sys.platform.startswith("linux"):
        return {"synchronized": None, "max_error_s": None, "est_error_s": None, "how": f"unknown on {sys.platform}"}
    try:
        libc = libc or ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()          # modes 0: read only
        state = libc.ntp_adjtime(ctypes.byref(tx))
    except (OSError, AttributeError) as exc:
        return {"synchronized": None, "max_error_s": None, "est_error_s": None, "how": f"adjtimex failed: {exc}"}
    if state < 0:
        return {"synchronized": None, "max_error_s": None, "est_error_s": None,
                "how": f"adjtimex failed (errno {ctypes.get_errno()})"}
    synced = state != TIME_ERROR and not tx.status & STA_UNSYNC
    return {"synchronized": bool(synced), "max_error_s": tx.maxerror / 1e6, "est_error_s": tx.esterror / 1e6,
            "how": "kernel adjtimex (NTP discipline)"}
