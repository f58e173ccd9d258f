"""edge-agent: camera -> int8 TFLite inference -> detections with localization uncertainty over MQTT.
Imports no TensorFlow: a Raspberry Pi has only a TFLite interpreter, OpenCV, paho-mqtt and numpy."""
__version__ = "0.1.0"
