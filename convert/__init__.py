"""convert-model: build, train, evaluate and export classifiers and Gaussian YOLOv3 detectors to TFLite.
Runs on a workstation with TensorFlow; never imported by the edge agent."""
__version__ = "0.1.0"
