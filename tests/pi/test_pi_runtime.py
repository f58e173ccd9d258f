"""Below the agent: the device's code path (OpenCV decode -> edge.preprocess -> edge.runtime.TFLiteModel ->
edge.decode) on the emulated Cortex-A72 against the host's x86 run, tensor by tensor.

This pins down where a difference comes from: decoded frames and model inputs must be bit-identical (the
video is lossless), so any output difference is the interpreter's; it is measured in output quantization
steps (tolerance and its reasons: pi_compare's docstring)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pi_compare import STEPS, Tolerance, compare_frames, output_step_differences
from pi_wheels import ENVIRONMENTS

PROBE = Path(__file__).with_name("pi_probe.py")
pytestmark = pytest.mark.pi


def probe_payloads(result: dict, frame_size: tuple[int, int]) -> list[dict]:
    """The probe's per-frame detections shaped like detection messages (frames without any are dropped,
    as the agent publishes nothing for them)."""
    w, h = frame_size
    return [{"frame": {"w": w, "h": h}, "detections": dets} for dets in result["detections"] if dets]


@pytest.fixture(scope="session")
def host_probe(demo_model, pi_video, project_root, tmp_path_factory, score_threshold):
    video, _ = pi_video
    out = tmp_path_factory.mktemp("probe-x86") / "outputs.npz"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(project_root)
    proc = subprocess.run([sys.executable, str(PROBE), str(demo_model), str(video), str(out),
                           "--score-threshold", str(score_threshold)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"x86 probe failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), dict(np.load(out))


@pytest.mark.parametrize("extra", sorted(ENVIRONMENTS))
def test_interpreter_on_cortex_a72_matches_x86(extra, pi_python, demo_model, pi_video, host_probe, tmp_path,
                                               score_threshold, model_quantization):
    video, frames = pi_video
    ref, ref_tensors = host_probe
    runtime, numpy_major = ENVIRONMENTS[extra]
    out = tmp_path / "outputs.npz"
    proc = pi_python(extra).run(str(PROBE), str(demo_model), str(video), str(out),
                                "--score-threshold", str(score_threshold), timeout=600)
    arm = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[{extra}] aarch64: {arm['interpreter']}, numpy {arm['numpy']}, OpenCV {arm['opencv']}; "
          f"x86: {ref['interpreter']}, numpy {ref['numpy']}, OpenCV {ref['opencv']}")
    assert arm["machine"] == "aarch64" and ref["machine"] == "x86_64"
    assert arm["interpreter"].startswith(runtime), f"sigmawatch[{extra}] should run {runtime}, ran {arm['interpreter']}"
    assert int(arm["numpy"].split(".")[0]) == numpy_major
    assert len(arm["frames"]) == frames
    assert arm["frames"] == ref["frames"], "the lossless video decoded differently on aarch64"
    assert arm["inputs"] == ref["inputs"], "edge.preprocess produced different model inputs on aarch64"

    steps = output_step_differences(ref_tensors, dict(np.load(out)))
    worst = max(steps.values())
    print(f"[{extra}] largest output difference: {worst} quantization step(s); per output (max over frames): "
          + ", ".join(f"{k.split('/')[1]}={v}" for k, v in sorted(steps.items()) if k.startswith("0/")))
    assert worst <= STEPS[extra], f"outputs differ by up to {worst} steps (> {STEPS[extra]}): {steps}"

    meta, quant = model_quantization
    tol = Tolerance.for_model(meta, quant, STEPS[extra])
    size = (int(ref["frame_size"][0]), int(ref["frame_size"][1]))
    cmp = compare_frames(probe_payloads(ref, size), probe_payloads(arm, size), tol, score_threshold)
    print(f"[{extra}] decoded: {cmp.report()}")
    assert cmp.ok, cmp.report()
