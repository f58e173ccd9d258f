"""bench.capacity's steady state: the windows whose latency decides whether a step is held."""
from __future__ import annotations

from bench.capacity import STEADY_AFTER_S, STEADY_BEFORE_END_S, steady_windows


def test_only_whole_windows_between_the_fleets_start_and_stop_count():
    # cameras from 3.2 s to 42.95 s, 10 s windows: [0, 10) and [40, 50) are partial, [10, 40) whole
    assert steady_windows(3_200, 42_950, 10_000) == [10_000, 20_000, 30_000]
    # a window that starts less than STEADY_AFTER_S after the first message holds the fleet's start
    start = 20_000 - int(STEADY_AFTER_S * 1000)
    assert steady_windows(start + 1, 60_000, 10_000)[0] == 30_000
    assert steady_windows(start, 60_000, 10_000)[0] == 20_000
    # one that ends less than STEADY_BEFORE_END_S before the last message closes on the stopping fleet's traffic
    end = 40_000 + int(STEADY_BEFORE_END_S * 1000)
    assert steady_windows(0 + 5_000, end - 1, 10_000)[-1] == 20_000
    assert steady_windows(0 + 5_000, end, 10_000)[-1] == 30_000
    assert steady_windows(1_000, 12_000, 10_000) == []          # too short a step: none (the bench refuses it)
