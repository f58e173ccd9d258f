"""The agent says whether the clock that stamps its frames is synchronized: the kernel's adjtimex answer."""
from __future__ import annotations

import ctypes
import sys

import pytest

from edge.clock import STA_UNSYNC, TIME_ERROR, clock_status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is a Linux system call")
def test_the_kernel_answers_on_this_machine():
    st = clock_status()
    assert isinstance(st["synchronized"], bool)
    assert st["max_error_s"] >= 0 and st["est_error_s"] >= 0 and "adjtimex" in st["how"]


class _Libc:
    """Answers ntp_adjtime like a kernel in a given state (the state of this machine's clock cannot be chosen)."""

    def __init__(self, ret: int, status: int):
        self.ret, self.status = ret, status

    def ntp_adjtime(self, ref):
        ref._obj.status = self.status
        ref._obj.maxerror, ref._obj.esterror = 16_000_000, 8_000
        return self.ret


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is a Linux system call")
@pytest.mark.parametrize("ret,status,synced", [(0, 0, True), (TIME_ERROR, STA_UNSYNC, False), (0, STA_UNSYNC, False),
                                               (TIME_ERROR, 0, False)])
def test_unsynchronized_is_told_apart(ret, status, synced):
    st = clock_status(_Libc(ret, status))
    assert st["synchronized"] is synced and st["max_error_s"] == 16.0 and st["est_error_s"] == 0.008


def test_a_failing_call_is_unknown_not_synchronized():
    class Broken:
        def ntp_adjtime(self, ref):
            ctypes.set_errno(1)
            return -1
    assert clock_status(Broken())["synchronized"] is None
