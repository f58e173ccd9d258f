"""Fixtures of the stream tests."""
from __future__ import annotations

import pytest

from stream_helpers import Proc


@pytest.fixture
def procs():
    started: list[Proc] = []

    def start(args, log):
        p = Proc(args, log)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


