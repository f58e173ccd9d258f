"""The dashboard's MQTT side: subscribe to one broker and feed every message to DashboardState.

Any MQTT 3.1.1 or 5 broker, with the settings every sigmawatch program shares (``edge.contract.mqtt``:
TLS, client certificates, user name and password file). The client checks CONNACK and SUBACK; the page shows
whether the dashboard is connected, or why not (refused, unreachable, reconnecting).
"""
from __future__ import annotations

import logging
import uuid

from dashboard.state import DashboardState, subscriptions
from edge.contract.mqtt import MqttClient, MqttSettings

log = logging.getLogger(__name__)


class MqttRelay:
    """One MQTT client subscribed to the dashboard's topics; ``start()`` / ``stop()``. The broker's state
    (connected, or the reason it is not) is shown on the page through ``DashboardState.set_broker``."""

    def __init__(self, settings: MqttSettings, state: DashboardState, client_id: str | None = None):
        self.settings = settings
        self.state = state
        self.client = MqttClient(settings, client_id=client_id or settings.client_id or
                                 f"sigmawatch-dashboard-{uuid.uuid4().hex[:8]}",
                                 subscriptions=[(t, 0) for t in subscriptions(state.prefix)],
                                 on_message=self._on_message, on_state=self._on_state)

    def start(self) -> "MqttRelay":
        self.state.set_broker(False, self.settings.url, "connecting")
        self.client.start()
        return self

    def wait_ready(self, timeout: float) -> None:
        """Raises BrokerError when the broker refused the connection or the subscriptions, or did not answer."""
        self.client.wait_ready(timeout)

    def stop(self) -> None:
        self.client.stop()

    def _on_state(self, connected: bool, reason: str) -> None:
        self.state.set_broker(connected, self.settings.url, reason)
        if connected:
            log.info("subscribed to %s on %s", ", ".join(subscriptions(self.state.prefix)), self.settings.url)

    def _on_message(self, msg) -> None:
        self.state.handle(msg.topic, msg.payload, retained=bool(msg.retain))
