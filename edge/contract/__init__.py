"""The contract every sigmawatch process shares: message schemas, their validator and the detections wire
format (``schema``, ``validator``, ``wire``), the stream job's output payloads (``outputs``), one error hierarchy with one
exit-code table (``errors``), the command-line conventions (``cli``), and one MQTT settings model with the
one paho client factory (``mqtt``, the only module here that needs a third-party package: paho-mqtt and
pydantic, which every role installs).

It lives in ``edge/`` so that a Raspberry Pi, which installs only the edge agent, carries it; the server
(``stream/``), the dashboard and the demo import it from here and import nothing else of ``edge/``.
"""
