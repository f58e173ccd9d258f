"""The job's MQTT output: one client per operator that publishes results, QoS 1, retained.

Window results are published by the window operators themselves, the moment they are computed
(``stream.functions._Windows``); everything else (stats, alerts) by the ``MqttPublish`` map at the end of the
graph. Measured with ``bench.capacity`` at 1,000 cameras (2026-12-08): the device windows computed a window's
1,000 aggregates within 0.2-0.5 s, but handed on through the JVM to a separate publishing operator they reached
it spread over 0.5-1.3 s more, which put the last cameras' aggregates past the window + 2 s goal.

The publisher holds the MQTT settings, not the password: its client (created in ``open``, on the TaskManager)
reads the password file or credential there. A broker that refuses the connection (credentials, TLS) fails the
task with the broker's reason; a broker that is only away is reconnected in the background while up to
``MAX_QUEUED`` messages wait (more are counted and logged as dropped: the file sink keeps every record).
"""
from __future__ import annotations

import logging

from edge.contract import outputs
from edge.contract.errors import BrokerError
from edge.contract.mqtt import ERR_NO_CONN, SUCCESS, MqttClient, MqttSettings

log = logging.getLogger("stream.publish")


def operator_client_id(settings: MqttSettings, base: str, role: str, subtask: int) -> str:
    """Each publishing operator's own client id (two clients with one id would disconnect each other):
    ``<mqtt.client_id or base>-<role>-<subtask>``."""
    return f"{settings.client_id or base}-{role}-{subtask}"


class ResultPublisher:
    MAX_QUEUED = 100_000
    MAX_INFLIGHT = 1000
    CONNECT_WAIT_S = 10.0

    def __init__(self, settings: MqttSettings, client_id: str):
        self.settings = settings
        self.client_id = client_id
        self.dropped = 0
        self.client = MqttClient(settings, client_id=client_id, max_inflight=self.MAX_INFLIGHT,
                                 max_queued=self.MAX_QUEUED).start()
        try:
            self.client.wait_ready(self.CONNECT_WAIT_S)
        except BrokerError as exc:
            if self.client.refused:
                self.client.stop()
                raise RuntimeError(f"MQTT output: {exc}") from None
            log.warning("MQTT output (%s): %s; results queue until it is reachable", client_id, exc)

    def publish(self, payload: dict, body: str) -> None:
        """Publish ``body``, the JSON text of the validated ``payload``, on the payload's topic."""
        rc, _mid = self.client.publish(outputs.topic_for(self.settings.topic_prefix, payload), body.encode(),
                                       qos=1, retain=True)
        if rc not in (SUCCESS, ERR_NO_CONN):      # NO_CONN: queued for the reconnect
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.error("MQTT output (%s): %d results not published (paho rc %s); they are in records/",
                          self.client_id, self.dropped, rc)

    def stop(self) -> None:
        self.client.stop()
