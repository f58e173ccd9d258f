"""stream: the MQTT -> landing-directory bridge and the PyFlink aggregation job."""
__version__ = "0.1.0"
