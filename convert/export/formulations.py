"""Which hard-swish graph an export uses, and what each one measured.

A model's HardSwish/HardSigmoid layers can be traced as different TFLite graphs of the same function
(convert.models.layers). The exporter picks one per quantization ("auto"):

  int8               "xnnpack"  (x/6) * relu6(x+3): MUL, ADD, MUL, all taken by XNNPACK in int8 (one partition);
                                the native HARD_SWISH is not, and splits a MobileNetV3 into ~20 partitions.
  float32/16, dynamic "native"  one HARD_SWISH op: float XNNPACK has it, and it is the fastest float form.

For an int8 export with held-out images, the report also converts the model with the other formulation(s)
and states what each one measured (XNNPACK partitions, SNR and top-1 agreement against the Keras model), so
the choice is visible in every export, not only in a README.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge.contract.errors import ExportError
from convert.export.fidelity import OutputFidelity
from convert.models.layers import HARD_SWISH_FORMULATIONS
from edge.modelbench import Delegation

AUTO = "auto"
INT8_FORMULATION = "xnnpack"
FLOAT_FORMULATION = "native"
COMPARE_WITH = ("native",)            # what an int8 export's report measures besides its own formulation


def resolve(formulation: str | None, quantization: str) -> str | None:
    """'auto' -> the formulation for this quantization; None leaves the layers as built."""
    if formulation is None:
        return None
    if formulation == AUTO:
        return INT8_FORMULATION if quantization == "int8" else FLOAT_FORMULATION
    if formulation not in HARD_SWISH_FORMULATIONS:
        raise ExportError(f"hard-swish formulation {formulation!r}; expected 'auto' or one of {HARD_SWISH_FORMULATIONS}")
    return formulation


@dataclass
class FormulationResult:
    formulation: str
    used: bool                       # the formulation of the exported file
    delegation: Delegation
    fidelity: list[OutputFidelity]

    def describe(self) -> str:
        parts = [f"{self.delegation.partitions} partition(s)"]
        for f in self.fidelity:
            text = f"SNR {f.snr_db:.1f} dB"
            if f.top1_agreement is not None:
                text += f", top-1 {f.top1_agreement:.1%}"
            parts.append(text if len(self.fidelity) == 1 else f"{f.name} {text}")
        return f"{self.formulation}{' (this export)' if self.used else ''}: " + ", ".join(parts)


def describe_all(results: list[FormulationResult]) -> str:
    ordered = sorted(results, key=lambda r: not r.used)
    return "; ".join(r.describe() for r in ordered)
