"""The one table printed after an export."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from convert.export.calibration_ranges import RangeFix
from convert.export.edgetpu import EdgeTPUResult
from convert.export.fidelity import OutputFidelity
from convert.export.formulations import FormulationResult, describe_all
from convert.export.inspect_model import ModelInspection


@dataclass
class ExportReport:
    path: Path
    quantization: str
    io_dtype: str
    size_bytes: int
    float32_size_bytes: int | None
    inspection: ModelInspection
    fidelity: list[OutputFidelity]
    calibration_images: int
    heldout_images: int
    seconds: float
    hard_swish: str | None
    metadata: dict
    edgetpu: EdgeTPUResult | None = None
    warnings: list[str] = field(default_factory=list)
    hard_swish_compared: list[FormulationResult] = field(default_factory=list)
    range_fix: RangeFix | None = None
    depthwise: str | None = None          # what the large-kernel depthwise form did (models that have such kernels)
    depthwise_form: str = "tiled"         # the form the exported graph was converted with (depthwise_form)

    @property
    def float_ops(self) -> dict[str, int]:
        return dict(self.inspection.float_ops)

    def rows(self) -> list[tuple[str, str]]:
        i = self.inspection
        rows = [("model", str(self.path)),
                ("quantization", f"{self.quantization} (input {i.input_dtype} {i.input_shape}, "
                                 f"outputs {', '.join(f'{k} {v}' for k, v in sorted(i.output_dtypes.items()))})")]
        if self.quantization == "int8":
            rows.append(("ops not in int8", ", ".join(f"{k} x{v}" for k, v in sorted(i.float_ops.items())) or "none"))
        size = f"{self.size_bytes / 1e6:.2f} MB"
        if self.float32_size_bytes:
            size += f" ({self.size_bytes / self.float32_size_bytes:.0%} of float32 {self.float32_size_bytes / 1e6:.2f} MB)"
        rows.append(("size", size))
        rows.append(("ops", ", ".join(f"{k} x{v}" for k, v in sorted(i.ops.items()))))
        rows.append(("XNNPACK", i.delegation.describe()
                     + (f" [hard-swish: {self.hard_swish}]" if self.hard_swish else "")))
        if self.depthwise:
            rows.append(("depthwise", self.depthwise))
        if self.quantization == "int8":
            text = (f"{self.calibration_images} of {self.calibration_images + self.heldout_images} images, "
                    f"{self.heldout_images} held out for the fidelity check")
            if self.range_fix is not None:
                text += "; " + self.range_fix.describe()
            rows.append(("calibration", text))
        for f in self.fidelity:
            text = f"SNR {f.snr_db:.1f} dB, max |err| {f.max_abs_error:.4g}"
            if f.top1_agreement is not None:
                text = f"top-1 agreement {f.top1_agreement:.1%} ({self.heldout_images} images), " + text
            rows.append((f"fidelity {f.name}", text + " vs Keras float"))
        if not self.fidelity:
            rows.append(("fidelity", "not measured (no held-out images)"))
        if self.hard_swish_compared:
            rows.append(("hard-swish", describe_all(self.hard_swish_compared)))
        if self.edgetpu is not None:
            e = self.edgetpu
            cpu = ", ".join(e.unsupported_ops) or "none"
            rows.append(("Edge TPU ops check", f"ops outside the Edge TPU table: {cpu}"))
            if e.compiler:
                rows.append(("edgetpu_compiler", f"{e.mapped} mapped, {e.unmapped} on CPU -> {e.compiled_path}"))
            else:
                rows.append(("edgetpu_compiler", "not installed; the int8 model above is ready for it (see below)"))
        rows.append(("metadata", f"embedded + {self.path.with_suffix('.json').name}, sha256 "
                                 f"{str(self.metadata.get('model_sha256', ''))[:12]}..."))
        rows.append(("time", f"{self.seconds:.1f} s"))
        return rows

    def table(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        if self.edgetpu is not None and not self.edgetpu.compiler:
            lines.append(self.edgetpu.message)
        return "\n".join(lines)
