"""Below the agent: the device's code path (OpenCV decode -> edge.preprocess -> edge.runtime.TFLiteModel ->
edge.decode) on the emulated Cortex-A72 against x86 with the same requirement set, tensor by tensor.

This pins down where a difference comes from: decoded frames and model inputs must be bit-identical (the
video is lossless), so any output difference is the interpreter's. At the cells that can become detections
the aarch64 outputs may differ from x86 by no more output steps than +-1 gray-level input noise moves x86
itself; decoded detections must agree within the tolerance of pi_compare (derived the same way)."""
from __future__ import annotations

import pytest

from pi_reference import meaningful, probe_payloads, run_probe
from pi_compare import candidate_step_differences, compare_frames
from pi_wheels import ENVIRONMENTS

pytestmark = pytest.mark.pi
MIN_OBJECTNESS = 0.1   # cells below this objectness cannot produce a detection at any sensible threshold


@pytest.mark.parametrize("extra", sorted(ENVIRONMENTS))
def test_interpreter_on_cortex_a72_matches_x86(extra, pi_python, x86_reference, demo_model, pi_video, tmp_path,
                                               score_threshold, model_quantization):
    video, frames = pi_video
    ref = x86_reference(extra)
    (x86, x86_tensors), tol = ref["clean"], ref["tolerance"]
    runtime, numpy_major = ENVIRONMENTS[extra]
    arm, arm_tensors = run_probe(pi_python(extra), demo_model, video, tmp_path / "arm.npz", score_threshold)
    print(f"\n[{extra}] aarch64: {arm['interpreter']}, numpy {arm['numpy']}, OpenCV {arm['opencv']}; "
          f"x86: {x86['interpreter']}, numpy {x86['numpy']}, OpenCV {x86['opencv']}")
    assert arm["machine"] == "aarch64" and x86["machine"] == "x86_64"
    assert arm["interpreter"] == x86["interpreter"] and arm["interpreter"].startswith(runtime), \
        f"sigmawatch[{extra}] should run {runtime} on both sides: {arm['interpreter']} vs {x86['interpreter']}"
    assert int(arm["numpy"].split(".")[0]) == numpy_major
    assert len(arm["frames"]) == frames
    assert arm["frames"] == x86["frames"], "the lossless video decoded differently on aarch64"
    assert arm["inputs"] == x86["inputs"], "edge.preprocess produced different model inputs on aarch64"

    meta, quant = model_quantization
    layout = dict(quant=quant, per_anchor=7 + len(meta["labels"]), objectness_index=6, min_objectness=MIN_OBJECTNESS)
    arch = candidate_step_differences(x86_tensors, arm_tensors, **layout)
    noise = {}
    for _, noisy_tensors in ref["noisy"]:
        for name, v in candidate_step_differences(x86_tensors, noisy_tensors, **layout).items():
            noise[name] = max(noise.get(name, 0), v)
    print(f"[{extra}] output steps at candidate cells, aarch64 vs x86: {arch}; x86 under +-1 noise: {noise}")
    worst_arch, worst_noise = max(arch.values()), max(noise.values())
    assert worst_arch <= max(worst_noise, 2), (
        f"aarch64 outputs differ from x86 by up to {worst_arch} steps at candidate cells, more than +-1 gray-level "
        f"noise moves x86 ({worst_noise}): {arch} vs {noise}")

    print(f"[{extra}] {meaningful(tol)}")
    cmp = compare_frames(probe_payloads(x86), probe_payloads(arm), tol, score_threshold)
    print(f"[{extra}] decoded: {cmp.report()}")
    assert cmp.ok, cmp.report()
