"""The real ``edge-agent run`` on an emulated Raspberry Pi 4 (Cortex-A72, aarch64 wheels of sigmawatch[edge] or
[edge-legacy]) with the shipped int8 demo detector, a lossless generated video as its camera, publishing to
mosquitto on the host's 127.0.0.1 (qemu-user shares the host's network).

What arrives must validate against edge.contract.schema and match the x86 run of the same agent, model, frames and
requirement set (installed for x86_64, run by the host's Python 3.11 without site-packages):
one message per frame (every frame shows four objects), the same classes (detections pair up only within a
class; an unpaired one above threshold + score tolerance fails), boxes / sigma / scores within the
tolerance measured on x86 under +-1 gray-level input noise (pi_compare explains why and how).
The agent's retained status names the interpreter it picked, which must be the one the extra installs.

A crash under the Cortex-A72 model (SIGILL from an instruction the Pi lacks) fails the run with a message
saying so: tested by injecting an ARMv8.2 instruction into inference (test_pi_cpu shows, with a Cortex-A76
control, that this instruction faults because of the CPU model).
Emulated run times are printed for CI budgeting only; they say nothing about a Pi's speed.
"""
from __future__ import annotations

import pytest

from edge.contract import schema
from pi_runner import NEWER_CORE_SNIPPET
from pi_agent import AgentRunError, Collector, console_script_args, run_agent, write_config
from pi_compare import compare_frames
from pi_reference import meaningful
from pi_runner import EmulatedPython
from pi_wheels import ENVIRONMENTS, console_script, requirement_set

pytestmark = [pytest.mark.pi, pytest.mark.mqtt]
AGENT_TIMEOUT = 300


def agent_args(entry, tmp_path, device, video, model, broker, threshold) -> list[str]:
    """``edge-agent run --config <yaml>`` through ``entry`` (module, function) of the console script."""
    cfg = write_config(tmp_path / f"{device}.yaml", device_id=device, video=video, model=model, port=broker.port,
                       state_dir=tmp_path / f"state-{device}", score_threshold=threshold)
    return console_script_args(entry, "run", "--config", str(cfg))


@pytest.fixture(scope="session")
def pi_agent(pi_project_site) -> tuple[str, str]:
    return console_script(pi_project_site, "edge-agent")


def checked_detections(collector: Collector, device: str, frames: int) -> list[dict]:
    """The device's detection messages, schema-validated, one per frame, seq 0..frames-1."""
    msgs = collector.wait_for(device, "detections", frames, timeout=30)
    for m in msgs:
        schema.validate_decoded_detections(m)
    seqs = [m["seq"] for m in msgs]
    assert seqs == list(range(frames)), f"{device}: expected one detections message per frame, got seq {seqs}"
    return msgs


def online_status(collector: Collector, device: str) -> dict:
    statuses = [schema.validate(s, "status") for s in collector.of(device, "status")]
    online = [s for s in statuses if s["state"] == "online"]
    assert online, f"{device} never published an online status: {statuses}"
    return online[0]


@pytest.mark.parametrize("extra", sorted(ENVIRONMENTS))
def test_agent_on_cortex_a72_publishes_what_x86_publishes(extra, pi_python, x86_python, x86_reference, broker, pi_agent,
                                                          tmp_path, demo_model, pi_video, score_threshold,
                                                          model_quantization):
    video, frames = pi_video
    runtime, _ = ENVIRONMENTS[extra]
    device = f"pi4-{extra}"
    collector = Collector(broker.host, broker.port).start()
    try:
        x86 = run_agent(agent_args(pi_agent, tmp_path, "x86-ref", video, demo_model, broker, score_threshold),
                        python=x86_python(extra), cwd=tmp_path, log_path=tmp_path / "x86.log", timeout=AGENT_TIMEOUT)
        arm = run_agent(agent_args(pi_agent, tmp_path, device, video, demo_model, broker, score_threshold),
                        python=pi_python(extra), cwd=tmp_path, log_path=tmp_path / "aarch64.log", timeout=AGENT_TIMEOUT)
        ref = checked_detections(collector, "x86-ref", frames)
        got = checked_detections(collector, device, frames)
        status = online_status(collector, device)
    finally:
        collector.stop()
    print(f"[{extra}] aarch64 agent status: interpreter {status['interpreter']!r}; emulated run {arm.seconds:.0f} s, "
          f"x86 run {x86.seconds:.0f} s (CI budget only, not performance)")
    x86_status = online_status(collector, "x86-ref")
    assert status["interpreter"].startswith(runtime) and status["interpreter"] == x86_status["interpreter"], (
        f"sigmawatch[{extra}] installs {runtime}: the Pi's agent reports {status['interpreter']!r}, "
        f"x86's {x86_status['interpreter']!r}")
    assert x86_status["model"]["hash"] == status["model"]["hash"]

    meta, _ = model_quantization
    assert {d["label"] for m in ref for d in m["detections"]} <= set(meta["labels"])
    tol = x86_reference(extra)["tolerance"]
    print(f"\n[{extra}] {meaningful(tol)}")
    cmp = compare_frames(ref, got, tol, score_threshold)
    print(f"[{extra}] {cmp.report()}")
    assert cmp.ok, cmp.report()


SIGILL_IN_INFERENCE = f'''
"""Test injection: every inference first executes an ARMv8.2 instruction (as a kernel built for a newer
core would). Imported by Python at start-up from PYTHONPATH."""
import edge.runtime

_invoke = edge.runtime.TFLiteModel.invoke


def invoke(self):
    exec(compile({NEWER_CORE_SNIPPET!r}, "newer-core-kernel", "exec"), {{}})
    return _invoke(self)


edge.runtime.TFLiteModel.invoke = invoke
'''


def test_agent_crash_under_cortex_a72_fails_the_run(pi_python, broker, pi_agent, tmp_path, demo_model,
                                                      pi_video, score_threshold):
    video, _ = pi_video
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SIGILL_IN_INFERENCE)
    collector = Collector(broker.host, broker.port).start()
    try:
        with pytest.raises(AgentRunError) as info:
            run_agent(agent_args(pi_agent, tmp_path, "pi4-crash", video, demo_model, broker, score_threshold),
                      python=pi_python("edge", extra_paths=(inject,)), cwd=tmp_path, log_path=tmp_path / "crash.log",
                      timeout=AGENT_TIMEOUT)
        message = str(info.value)
        assert "killed by SIGILL" in message and "Cortex-A72" in message, message
        wills = collector.wait_for("pi4-crash", "status", 2, timeout=10)
        assert any(s["state"] == "offline" and "last will" in s.get("reason", "") for s in wills), wills
    finally:
        collector.stop()


def test_tflite_runtime_under_numpy2_is_refused_with_a_clear_error(pi_rootfs, pi_site, pi_project_site, broker, pi_agent,
                                                                    project_root, tmp_path, demo_model, pi_video,
                                                                    score_threshold):
    """What a Pi user gets from `pip install tflite-runtime opencv-python-headless ...` without the numpy<2 pin
    of [edge-legacy]: numpy 2 (tflite-runtime declares no upper bound). tflite-runtime imports, then fails
    deep inside Interpreter(); the agent must refuse with its interpreter exit code and a reason, no traceback."""
    reqs = [r for r in requirement_set(project_root / "pyproject.toml", "edge-legacy")
            if not r.replace(" ", "").startswith("numpy")] + ["numpy>=2"]
    python = EmulatedPython(pi_rootfs, [pi_project_site, pi_site("edge-legacy-without-numpy-pin", reqs)])
    video, _ = pi_video
    with pytest.raises(AgentRunError) as info:
        run_agent(agent_args(pi_agent, tmp_path, "pi4-numpy2", video, demo_model, broker, score_threshold),
                  python=python, cwd=tmp_path, log_path=tmp_path / "numpy2.log", timeout=AGENT_TIMEOUT)
    message = str(info.value)
    assert "exit status 4" in message, message  # edge.contract.errors: interpreter or accelerator unavailable
    assert "built for numpy 1.x" in message and "numpy<2" in message, message
    assert "Traceback" not in message, message
