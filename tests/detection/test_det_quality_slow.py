"""Slow: a detector trained by the project's own command really detects (mAP on a small synthetic set)."""
from __future__ import annotations

import json

import pytest

from convert.cli import main


@pytest.mark.slow
def test_short_training_detects_synthetic_shapes(tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["synth", "--out", str(data), "--train", "400", "--val", "60", "--size", "128", "--seed", "4",
                 "--max-objects", "3"]) == 0
    assert main(["train-detector", "--data", str(data), "--out", str(run), "--backbone", "darknet_small",
                 "--input-size", "128", "--neck-channels", "32", "--epochs", "12", "--batch-size", "16",
                 "--lr", "3e-3", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run), "--data", str(data)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # an untrained detector scores ~0; a working pipeline gets well above chance within this budget
    assert summary["map50"] > 0.3, summary
