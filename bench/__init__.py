"""Benchmarks of the whole project (some need the test support code: generated traffic, recount oracle).
Not shipped in the wheel: run from a checkout, e.g. ``python -m bench.stream throughput``, ``python -m bench.tracking``."""
