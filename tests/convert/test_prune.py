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
