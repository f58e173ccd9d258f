"""TFLite export (float32 / float16 / dynamic / int8, Edge TPU-ready) with checks, fidelity and metadata."""
from convert.export.exporter import DEFAULT_CALIBRATION_RANGES, DEFAULT_HARD_SWISH, check_writable, export_tflite
from convert.export.report import ExportReport
from convert.export.tflite_convert import IO_DTYPES, QUANTIZATIONS

__all__ = ["DEFAULT_CALIBRATION_RANGES", "DEFAULT_HARD_SWISH", "ExportReport", "IO_DTYPES", "QUANTIZATIONS", "check_writable", "export_tflite"]
