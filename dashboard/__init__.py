"""Live web dashboard for sigmawatch: an MQTT subscriber relaying to browsers over SSE.

``state`` (what is known), ``relay`` (MQTT side), ``server`` (HTTP/SSE side), ``cli``
(``sigmawatch-dashboard``), ``static/`` (the page: HTML/JS/CSS, no build step, nothing from the network).
"""
