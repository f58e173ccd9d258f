"""Channel pruning (convert/prune): the dependency graph ties the right channels together and the surgery keeps the
function of what remains. Check: zero the BatchNorm of the channels chosen for removal (those channels then
output exactly 0 through ReLU/hard-swish/depthwise/SE), and the pruned model must compute the same outputs."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from convert.models.bn_calibration import calibrate_batchnorm
from convert.models.layers import ChannelSplit
from convert.models.registry import build_classifier
from convert.models.training import random_images
from convert.prune.channel_graph import analyze
from convert.prune.surgery import apply_overrides, count_params, plan_pruning, prune_model


def _random_gammas(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(np.abs(rng.normal(1.0, 0.6, layer.gamma.shape)).astype("float32"))


def _silence_removed(model, plan) -> None:
    """gamma = beta = 0 on every BatchNorm channel of a removed unit: those channels become exactly 0."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            ids = plan.graph.layer_io[layer.name][1][0]
            dead = [k for k, i in enumerate(ids) if plan.graph.uf.find(i) in plan.removed]
            if dead:
                gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
                gamma[dead] = 0.0
                beta[dead] = 0.0
                layer.gamma.assign(gamma)
                layer.beta.assign(beta)


def _check_same_function(model, images, ratio=0.5):
    plan = plan_pruning(analyze(model), ratio)
    _silence_removed(model, plan)
    pruned = prune_model(model, plan)
    x = np.stack(images).astype(np.float32)
    ref, got = model(x, training=False), pruned(x, training=False)
    ref = ref if isinstance(ref, dict) else {"out": ref}
    got = got if isinstance(got, dict) else {"out": got}
    for k in ref:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(ref[k]), rtol=1e-4, atol=1e-4)
    assert count_params(pruned) < 0.8 * count_params(model)
    return plan, pruned


@pytest.mark.parametrize("arch", ["mobilenetv3_small", "mixnet_s"])
def test_pruned_classifier_computes_the_same_function(arch):
    model = build_classifier(arch, (64, 64), 5, batch_size=None)
    images = random_images(6, (64, 64))
    calibrate_batchnorm(model, images)
    _random_gammas(model)
    plan, pruned = _check_same_function(model, images)
    assert plan.removed_channels() > 0
    for layer in pruned.layers:            # XNNPACK's int8 SPLIT needs equal parts: pruning keeps them equal
        if isinstance(layer, ChannelSplit):
            assert len(set(layer.sizes)) == 1, (layer.name, layer.sizes)


def test_pruned_detector_computes_the_same_function():
    from convert.detection.model import DetectorConfig, build_detector
    cfg = DetectorConfig(backbone="mobilenetv3_small", input_size=(64, 64), labels=["a", "b"], neck_channels=32)
    det = build_detector(cfg)
    images = random_images(4, (64, 64))
    calibrate_batchnorm(det.model, images)
    _random_gammas(det.model)
    plan, pruned = _check_same_function(det.model, images)
    # neck and backbone both lose channels; the heads' outputs (the contract) keep theirs
    overrides = plan.channel_overrides()
    assert any(name.startswith("neck") for name in overrides) and any(name.startswith("expanded") for name in overrides)
    assert not any(name.startswith(("s16_", "s32_")) for name in overrides)


def test_blocked_channels_are_never_removed():
    """Residual streams (tied by Add) are prunable only as a whole; model inputs/outputs never."""
    model = build_classifier("mobilenetv3_small", (64, 64), 3, batch_size=None)
    graph = analyze(model)
    reasons = {u.blocked for u in graph.units.values() if u.blocked}
    assert reasons == {"model input", "model output"}
    out_ids = graph.layer_io["predictions"][1][0]
    assert all(not graph.unit_of(i).prunable for i in out_ids)


def test_overrides_rebuild_the_same_shapes():
    model = build_classifier("mixnet_s", (64, 64), 4, batch_size=None)
    _random_gammas(model)
    plan = plan_pruning(analyze(model), 0.4)
    rebuilt = apply_overrides(model, plan.channel_overrides())
    pruned = prune_model(model, plan)
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in pruned.weights]


def test_bad_ratio_is_refused():
    model = build_classifier("mobilenetv3_small", (64, 64), 3, batch_size=None)
    with pytest.raises(ValueError, match="between 0 and 1"):
        plan_pruning(analyze(model), 1.5)


@pytest.mark.slow
def test_prune_command_on_a_trained_classifier(trained_classifier, shapes_dataset, tmp_path, capsys):
    """`convert-model prune --model`: sparsity training, pruning, fine-tuning, exports and the interleaved bench;
    the pruned model is smaller, still classifies the shapes, and its int8 export runs in one XNNPACK partition."""
    import json

    from convert.cli import main
    out = tmp_path / "pruned.keras"
    assert main(["prune", "--model", str(trained_classifier), "--data", str(shapes_dataset), "--output", str(out),
                 "--ratio", "0.5", "--sparsity-epochs", "1", "--finetune-epochs", "2", "--sparsity", "0.5", "--runs", "6",
                 "--rounds", "1"]) == 0
    text = capsys.readouterr().out
    rows = json.loads(out.with_suffix(".prune.json").read_text())
    assert [r["name"] for r in rows] == ["original", "pruned"]
    assert rows[1]["params"] < 0.75 * rows[0]["params"]
    assert rows[1]["score"] >= 80.0, rows                 # 3 shapes; the original fits them (100 %)
    assert rows[1]["int8_partitions"] == 1 and rows[1]["float32_partitions"] == 1
    assert "pruned int8 is" in text and "parameters" in text
    from convert.models.training import read_manifest
    assert read_manifest(out)["pruned"]["ratio"] == 0.5


def test_prune_command_refuses_bad_arguments(tmp_path, capsys):
    from convert.cli import main
    assert main(["prune", "--model", str(tmp_path / "none.keras"), "--data", str(tmp_path)]) == 2
    assert "--output" in capsys.readouterr().err
    assert main(["prune", "--model", str(tmp_path / "none.keras"), "--data", str(tmp_path), "--output",
                 str(tmp_path / "p.keras"), "--ratio", "1.5"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert main(["prune", "--model", str(tmp_path / "none.keras"), "--data", str(tmp_path), "--output",
                 str(tmp_path / "p.keras")]) == 3
    assert "does not exist" in capsys.readouterr().err
    assert main(["prune", "--model", str(tmp_path / "none.keras"), "--data", str(tmp_path), "--output",
                 str(tmp_path / "p.keras"), "--baseline"]) == 2
    assert "--baseline" in capsys.readouterr().err
    # a detector phase runs in epochs of 100 steps: 250 would silently become 200
    assert main(["prune", "--run", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "p"),
                 "--sparsity-steps", "250"]) == 2
    assert "--sparsity-steps 250" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert main(["prune", "--run", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "p"),
                 "--finetune-steps", "0"]) == 2
    assert "--finetune-steps 0" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert main(["prune", "--run", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "p"),
                 "--distill-weight", "0"]) == 2
    assert "--distill-weight 0.0: the distillation weight must be > 0" in capsys.readouterr().err


def _row(name, score, strict, params, int8_ms):
    return {"name": name, "metric": "mAP@.5 test", "score": score, "map50_95": strict, "params": params,
            "float32_ms": {1: 4.0}, "int8_ms": {1: int8_ms}}


def test_table_compares_the_pruned_detector_with_the_equal_budget_baseline():
    """The printed verdict: speed against the original (same architecture as the baseline), accuracy against the
    original and against the original trained for as many steps as the pruned model."""
    from convert.prune.commands import format_rows
    text = format_rows([_row("original", 82.27, 58.28, 1_442_414, 2.2), _row("baseline", 85.10, 60.00, 1_442_414, 2.2),
                        _row("pruned", 84.70, 57.24, 519_461, 1.4)], (1,))
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[2:5]] == ["original", "baseline", "pruned"]
    assert lines[3].split()[1:4] == ["85.10", "60.00", "1,442,414"]
    assert "1 thread(s): pruned int8 is 1.57x as fast as the original int8 (1.40 vs 2.20 ms)" in lines
    assert "mAP@.5 test: pruned +2.43 points vs the original, -0.40 points vs the baseline (same training steps)" in lines
    assert "mAP@.5:.95: pruned -1.04 points vs the original, -2.76 points vs the baseline (same training steps)" in lines
    assert lines[-1] == "parameters 36% of the original"
    plain = format_rows([_row("original", 82.27, 58.28, 1_442_414, 2.2), _row("pruned", 84.70, 57.24, 519_461, 1.4)],
                        (1,))
    assert "baseline" not in plain and "mAP@.5 test: pruned +2.43 points vs the original" in plain.splitlines()


def _train_config(run):
    import json
    return json.loads((run / "train.json").read_text())


def _steps(run):
    import json
    return json.loads((run / "ckpt" / "state.json").read_text())["step"]


def _tiny_detector_run(tmp_path, capsys):
    """A tiny synthetic dataset and a detector trained on it for 3 steps: (data, run, the prune output folder)."""
    from convert.cli import main
    data, run, out = tmp_path / "data", tmp_path / "run", tmp_path / "pruned"
    assert main(["synth", "--out", str(data), "--train", "16", "--val", "4", "--test", "6", "--size", "64"]) == 0
    assert main(["train-detector", "--data", str(data), "--out", str(run), "--backbone", "mobilenetv3_small",
                 "--input-size", "64", "--neck-channels", "32", "--epochs", "1", "--batch-size", "4",
                 "--steps-per-epoch", "3", "--warmup-steps", "1", "--no-progress"]) == 0
    capsys.readouterr()
    return data, run, out


@pytest.mark.slow
def test_prune_command_on_a_detector_with_the_equal_budget_baseline(tmp_path, capsys):
    """`convert-model prune --run ... --baseline`: the baseline is the original trained through the same phases as
    the pruned model (same configs, steps and seed; no L1, no pruning), and all six exports run in one XNNPACK
    partition with nothing outside it (int8 input/output, as the device runs the detector)."""
    import json

    from convert.cli import main
    from convert.detection.train import load_trained
    data, run, out = _tiny_detector_run(tmp_path, capsys)
    assert main(["prune", "--run", str(run), "--data", str(data), "--out", str(out), "--ratio", "0.5",
                 "--sparsity-steps", "2", "--finetune-steps", "3", "--baseline", "--split", "test", "--threads", "1",
                 "--runs", "6", "--rounds", "1"]) == 0
    text = capsys.readouterr().out
    rows = {r["name"]: r for r in json.loads((out / "prune.json").read_text())}
    assert list(rows) == ["original", "baseline", "pruned"]
    assert rows["baseline"]["params"] == rows["original"]["params"]
    assert rows["pruned"]["params"] < 0.8 * rows["original"]["params"]
    for r in rows.values():
        for q in ("float32", "int8"):
            assert r[f"{q}_partitions"] == 1 and r[f"{q}_undelegated"] == {}, (r["name"], q, r)
    # equal budget: phase by phase the baseline had the pruned model's training config (the L1 aside) and steps
    sparse = _train_config(out / "sparse")
    assert sparse["l1_bn"] > 0
    assert _train_config(out / "baseline-phase1") == dict(sparse, l1_bn=0.0)
    assert _train_config(out / "baseline") == _train_config(out)
    assert (_steps(out / "baseline-phase1"), _steps(out / "baseline")) == (_steps(out / "sparse"), _steps(out)) == (2, 3)
    original, baseline = load_trained(run).train_model, load_trained(out / "baseline").train_model
    assert any(np.abs(np.asarray(x) - np.asarray(y)).max() > 1e-4    # trained on from the original's weights
               for x, y in zip(original.trainable_weights, baseline.trainable_weights))
    assert "vs the baseline (same training steps)" in text



@pytest.mark.slow
def test_prune_command_distils_from_the_original_without_a_sparsity_phase(tmp_path, capsys):
    """`--sparsity-steps 0 --distill-weight W`: no sparse phase (the original's scales choose the channels), the
    fine-tune distils from the original (weight recorded, term logged per epoch), and the baseline is the original
    trained the same steps in one phase, without distillation."""
    import json

    from convert.cli import main
    data, run, out = _tiny_detector_run(tmp_path, capsys)
    assert main(["prune", "--run", str(run), "--data", str(data), "--out", str(out), "--ratio", "0.3",
                 "--sparsity-steps", "0", "--finetune-steps", "3", "--distill-weight", "2", "--baseline",
                 "--split", "test", "--threads", "1", "--runs", "6", "--rounds", "1"]) == 0
    assert not (out / "sparse").exists() and not (out / "baseline-phase1").exists()
    pruned, baseline = _train_config(out), _train_config(out / "baseline")
    assert pruned["distill_weight"] == 2.0 and pruned["l1_bn"] == 0.0
    assert baseline == dict(pruned, distill_weight=0.0)
    assert _steps(out) == _steps(out / "baseline") == 3
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert history[0]["distill"] > 0
    assert "distill" not in json.loads((out / "baseline" / "history.jsonl").read_text().splitlines()[0])
    rows = {r["name"]: r for r in json.loads((out / "prune.json").read_text())}
    assert list(rows) == ["original", "baseline", "pruned"]
    assert rows["pruned"]["params"] < rows["original"]["params"]
