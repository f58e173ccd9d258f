"""The lines printed after an export: what to run next with the file just written (as Ultralytics prints how to
predict and validate with an export). Every line is a command that works as printed from the repository root;
tests/convert/test_cli_console.py parses each with its program's own parser."""
from __future__ import annotations

import shlex
from pathlib import Path

LOCAL_CONFIG = "configs/edge-agent.local.yaml"      # a local mosquitto on 127.0.0.1:1883, camera 0


def hint_commands(model: str | Path, task: str) -> list[tuple[str, list[str]]]:
    """(what, argv) pairs; argv[0] is the program (edge-agent, convert-model, python -m edge.modelbench)."""
    m = str(model)
    agent = ["-c", LOCAL_CONFIG, "--model", m]
    if task != "detection":
        agent += ["--set", "model.task=classification"]
    hints = [("run it on camera 0 (or --source clip.mp4 --loop)", ["edge-agent", "run", *agent, "--source", "0"]),
             ("check model, camera and broker", ["edge-agent", "check", *agent]),
             ("time it here, or on the device", ["python", "-m", "edge.modelbench", m])]
    if task == "detection":
        hints.append(("measure mAP on your data", ["convert-model", "evaluate", "--model", m, "--data", "DATASET",
                                                   "--split", "test"]))
    return hints


def next_steps(model: str | Path, task: str) -> str:
    model = Path(model)
    lines = ["next:"]
    hints = hint_commands(model, task)
    width = max(len(what) for what, _ in hints) + 1
    for what, argv in hints:
        lines.append(f"  {what + ':':<{width}} {shlex.join(argv)}")
    return "\n".join(lines)
