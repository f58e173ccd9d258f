"""``sigmawatch-demo``: the whole chain (broker, edge agents, bridge, Flink job, dashboard) on one machine.

It may import every other package; nothing imports it (``tests/test_imports.py``)."""
