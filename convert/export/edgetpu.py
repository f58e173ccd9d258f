"""Edge TPU: check a full-int8 model against what the Edge TPU compiler accepts, run the compiler when
it is installed, report mapped/unmapped ops. Never installs anything."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from edge.contract.errors import ExportError, ToolMissingError

# Operations the Edge TPU compiler can map (Coral's "supported operations" table).
EDGETPU_OPS = frozenset("""
ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D EXPAND_DIMS FULLY_CONNECTED L2_NORMALIZATION
LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL PACK PAD PRELU QUANTIZE REDUCE_MAX REDUCE_MIN RELU RELU6
RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQUEEZE
STRIDED_SLICE SUB SUM SQUARED_DIFFERENCE TANH TRANSPOSE TRANSPOSE_CONV
""".split())

HOW_TO_GET = (
    "edgetpu_compiler is not on PATH. It runs on x86_64 Debian/Ubuntu only (not on a Pi): add Coral's apt "
    "repository and install it:\n"
    "  curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo gpg --dearmor -o /usr/share/keyrings/coral.gpg\n"
    "  echo 'deb [signed-by=/usr/share/keyrings/coral.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main' "
    "| sudo tee /etc/apt/sources.list.d/coral-edgetpu.list\n"
    "  sudo apt-get update && sudo apt-get install edgetpu-compiler\n"
    "then run: edgetpu_compiler -s -o OUTDIR MODEL.tflite   (the int8 model written here is ready for it)")


@dataclass
class EdgeTPUResult:
    compiler: str | None                 # path of edgetpu_compiler, None when missing
    compiled_path: Path | None = None
    mapped: int | None = None
    unmapped: int | None = None
    unsupported_ops: list[str] = field(default_factory=list)   # predicted from the op table
    log: str = ""
    message: str = ""


def check_edgetpu_ready(inspection) -> list[str]:
    """Raise ExportError if the model breaks a hard requirement; return ops the compiler will leave on the CPU."""
    problems = []
    if inspection.float_ops:
        problems.append("float ops " + ", ".join(sorted(inspection.float_ops)))
    if inspection.input_dtype != "uint8":
        problems.append(f"input dtype {inspection.input_dtype} (needs uint8)")
    if not inspection.static_shapes:
        problems.append("dynamic tensor shapes")
    if problems:
        raise ExportError("not Edge TPU-ready: " + "; ".join(problems))
    return sorted(op for op in inspection.ops if op not in EDGETPU_OPS)


def parse_compiler_output(text: str) -> tuple[int | None, int | None]:
    mapped = re.search(r"Number of operations that will run on Edge TPU:\s*(\d+)", text)
    cpu = re.search(r"Number of operations that will run on CPU:\s*(\d+)", text)
    return (int(mapped.group(1)) if mapped else None, int(cpu.group(1)) if cpu else None)


def run_compiler(model_path: Path, unsupported: list[str], timeout: float = 600) -> EdgeTPUResult:
    compiler = shutil.which("edgetpu_compiler")
    result = EdgeTPUResult(compiler=compiler, unsupported_ops=unsupported)
    if compiler is None:
        result.message = HOW_TO_GET
        return result
    out_dir = model_path.parent
    try:
        proc = subprocess.run([compiler, "-s", "-o", str(out_dir), str(model_path)], capture_output=True,
                              text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolMissingError(f"edgetpu_compiler at {compiler} could not run: {exc}") from exc
    result.log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise ExportError(f"edgetpu_compiler failed (exit {proc.returncode}):\n{result.log.strip()}")
    result.compiled_path = out_dir / f"{model_path.stem}_edgetpu.tflite"
    result.mapped, result.unmapped = parse_compiler_output(result.log)
    if not result.compiled_path.is_file():
        raise ExportError(f"edgetpu_compiler finished but {result.compiled_path} is missing:\n{result.log.strip()}")
    result.message = f"compiled: {result.compiled_path} ({result.mapped} ops on the Edge TPU, {result.unmapped} on CPU)"
    return result
