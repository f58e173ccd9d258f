"""Test-only support code shared by the tests and the benchmarks: the generated edge traffic and its
plain-Python recount (the oracle), a QoS 1 test publisher / collector, and a headless-Chromium driver.
Never shipped."""
