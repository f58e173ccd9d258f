"""TFLite interpreter adapters (in the spirit of pycoral's, reimplemented): pick a runtime, attach
the Edge TPU delegate, feed an image, read outputs by name.

Runtime order: ai-edge-litert, then tflite-runtime, then tensorflow.lite (a workstation).
Imports no TensorFlow unless neither device runtime is installed.
"""
from __future__ import annotations

import importlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract.errors import InterpreterError

RUNTIMES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")
EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


class RuntimeUnavailableError(InterpreterError, RuntimeError):
    """No interpreter, no Edge TPU delegate/device, or a model the interpreter cannot load."""


@dataclass(frozen=True)
class Runtime:
    name: str          # "ai-edge-litert", "tflite-runtime" or "tensorflow"
    version: str
    module: Any        # module exposing Interpreter and load_delegate

    def describe(self) -> str:
        return f"{self.name} {self.version}"


def find_runtime(preferred: str | None = None) -> Runtime:
    """The first importable runtime (or exactly ``preferred``: 'ai-edge-litert', 'tflite-runtime', 'tensorflow')."""
    candidates = RUNTIMES
    if preferred:
        key = {"ai-edge-litert": RUNTIMES[0], "tflite-runtime": RUNTIMES[1], "tensorflow": RUNTIMES[2]}.get(preferred)
        if key is None:
            raise RuntimeUnavailableError(f"unknown runtime {preferred!r}; use ai-edge-litert, tflite-runtime or tensorflow")
        candidates = (key,)
    errors = []
    for mod_name in candidates:
        try:
            module = importlib.import_module(mod_name)
        except Exception as exc:  # ImportError, or numpy ABI errors from tflite-runtime under numpy 2
            errors.append(f"{mod_name}: {type(exc).__name__}: {exc}")
            continue
        dist = {"ai_edge_litert.interpreter": "ai-edge-litert", "tflite_runtime.interpreter": "tflite-runtime",
                "tensorflow.lite": "tensorflow"}[mod_name]
        if dist == "tflite-runtime" and int(np.__version__.split(".")[0]) >= 2:
            # Every tflite-runtime release (the last is 2.14) is built against numpy 1.x: the import works,
            # creating an interpreter fails with "_ARRAY_API not found" (a SystemError, on a Pi too).
            errors.append(f"{mod_name}: tflite-runtime {_dist_version(dist)} is built for numpy 1.x but numpy "
                          f"{np.__version__} is installed (pip install 'numpy<2', as sigmawatch[edge-legacy] pins)")
            continue
        return Runtime(dist, _dist_version(dist), module)
    raise RuntimeUnavailableError(
        "no TFLite interpreter is importable (" + "; ".join(errors) + "). Install one: "
        "pip install 'sigmawatch[edge]' (ai-edge-litert) or, on older images, pip install 'sigmawatch[edge-legacy]' "
        "(tflite-runtime with numpy<2)")


def _dist_version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist if dist != "tensorflow" else "tensorflow-cpu")
    except Exception:
        try:
            from importlib.metadata import version
            return version(dist)
        except Exception:
            return "unknown"


def parse_device(device: str) -> tuple[str, dict[str, str]]:
    """'cpu' -> ('cpu', {}); 'edgetpu', 'usb', 'usb:1', 'pci', 'pci:0' -> ('edgetpu', delegate options)."""
    device = (device or "cpu").strip().lower()
    if device == "cpu":
        return "cpu", {}
    if device in ("edgetpu", "tpu"):
        return "edgetpu", {}
    kind, _, index = device.partition(":")
    if kind in ("usb", "pci") and (index == "" or index.isdigit()):
        return "edgetpu", {"device": device}
    raise RuntimeUnavailableError(f"device {device!r} is not understood; use cpu, edgetpu, usb, usb:N, pci or pci:N")


def make_interpreter(model: str | Path | bytes, device: str = "cpu", threads: int | None = None,
                     runtime: Runtime | None = None):
    """Create and allocate an interpreter. ``model`` is a path or flatbuffer bytes."""
    runtime = runtime or find_runtime()
    kind, options = parse_device(device)
    kwargs: dict[str, Any] = {}
    if isinstance(model, (bytes, bytearray)):
        kwargs["model_content"] = bytes(model)
    else:
        kwargs["model_path"] = str(model)
    if threads:
        kwargs["num_threads"] = int(threads)
    if kind == "edgetpu":
        lib = os.environ.get("SIGMAWATCH_EDGETPU_LIB", EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1"))
        load_delegate = getattr(runtime.module, "load_delegate", None)
        if load_delegate is None:
            raise RuntimeUnavailableError(f"{runtime.describe()} cannot load external delegates")
        try:
            delegate = load_delegate(lib, options)
        except (ValueError, OSError, RuntimeError) as exc:
            raise RuntimeUnavailableError(
                f"Edge TPU delegate {lib!r} could not be loaded for device {device!r} ({exc}). Install libedgetpu "
                "(Coral's apt repository: libedgetpu1-std), plug in the Coral device, and check that this user can access "
                "it (USB: udev rules from libedgetpu; PCIe: /dev/apex_0 and the apex group)") from exc
        kwargs["experimental_delegates"] = [delegate]
    try:
        interpreter = runtime.module.Interpreter(**kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise RuntimeUnavailableError(f"{runtime.describe()} could not load the model: {exc}") from exc
    return interpreter


def quantization(detail: dict) -> tuple[float, int]:
    """(scale, zero_point) of a tensor detail; (0.0, 0) for float tensors."""
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


class TFLiteModel:
    """One loaded model: ``set_input`` takes uint8 RGB pixels (H, W, 3) or a float array, ``run``
    returns every output by tensor name (raw, not dequantized: the decoder dequantizes)."""

    def __init__(self, model: str | Path | bytes, device: str = "cpu", threads: int | None = None,
                 runtime: Runtime | None = None):
        self.runtime = runtime or find_runtime()
        self.interpreter = make_interpreter(model, device, threads, self.runtime)
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise RuntimeUnavailableError(f"expected a model with one input tensor, found {len(inputs)}")
        self.input = inputs[0]
        self.outputs = self.interpreter.get_output_details()
        self.output_names = self._signature_output_names()
        shape = tuple(int(x) for x in self.input["shape"])
        if len(shape) != 4 or shape[0] != 1:
            raise RuntimeUnavailableError(f"expected a static (1, H, W, C) input, found {shape}")
        self.input_shape = shape

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) the model expects."""
        return self.input_shape[2], self.input_shape[1]

    @property
    def input_dtype(self):
        return self.input["dtype"]

    def _signature_output_names(self) -> dict[int, str]:
        """tensor index -> the model's own output name (the Keras output name, from the serving
        signature). Falls back to the tensor name when the model has no signature (some tools drop it)."""
        names = {d["index"]: d["name"] for d in self.outputs}
        try:
            runner = self.interpreter.get_signature_runner()
            for name, detail in runner.get_output_details().items():
                names[int(detail["index"])] = name
        except (ValueError, RuntimeError, AttributeError, KeyError):
            pass
        return names

    def output_quantization(self) -> dict[str, tuple[float, int]]:
        """{output name: (scale, zero_point)}, keyed like ``get_outputs``."""
        return {self.output_names[d["index"]]: quantization(d) for d in self.outputs}

    def set_input(self, image: np.ndarray, mean: float | list | None = None, std: float | list | None = None) -> None:
        """Quantize as the model needs. ``image``: uint8 pixels (H, W, C). ``mean``/``std``: normalization
        applied to pixel values before quantization (None = the graph takes raw 0..255 pixels)."""
        if image.shape != self.input_shape[1:]:
            raise ValueError(f"input image has shape {image.shape}, the model expects {self.input_shape[1:]}")
        dtype = self.input["dtype"]
        scale, zero = quantization(self.input)
        raw = mean is None and std is None and scale == 1.0 and image.dtype == np.uint8
        if raw and dtype == np.uint8 and zero == 0:
            tensor = image  # raw pixels, nothing to do
        elif raw and dtype == np.int8 and zero == -128:
            tensor = np.bitwise_xor(image, np.uint8(0x80)).view(np.int8)  # pixel - 128, exactly
        else:
            x = image.astype(np.float32)
            if mean is not None:
                x = x - np.asarray(mean, np.float32)
            if std is not None:
                x = x / np.asarray(std, np.float32)
            if dtype == np.float32:
                tensor = x
            elif dtype in (np.uint8, np.int8):
                info = np.iinfo(dtype)
                tensor = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
            else:
                raise ValueError(f"unsupported input dtype {dtype}")
        self.interpreter.set_tensor(self.input["index"], tensor[np.newaxis])

    def invoke(self) -> None:
        self.interpreter.invoke()

    def get_outputs(self) -> dict[str, np.ndarray]:
        """Every output by name (see ``_signature_output_names``), raw (quantized) values, batch dim kept."""
        return {self.output_names[d["index"]]: self.interpreter.get_tensor(d["index"]) for d in self.outputs}

    def run(self, image: np.ndarray, mean=None, std=None) -> dict[str, np.ndarray]:
        self.set_input(image, mean, std)
        self.invoke()
        return self.get_outputs()


def dequantize(array: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8/uint8 -> float32; float tensors pass through."""
    if array.dtype in (np.float32, np.float16, np.float64):
        return array.astype(np.float32, copy=False)
    return (array.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
