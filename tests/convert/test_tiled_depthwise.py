"""Large depthwise kernels as tiles of <= 25 taps (convert.models.tiled_depthwise, convert.export.depthwise_form):
the tiling covers each kernel exactly once, the tiled layer and the rewritten MixNet compute what the originals
compute (random weights and BatchNorm statistics), the converted graph has no depthwise kernel above 25 taps and
stays in one XNNPACK partition, and the int8 tiles are as faithful as the direct kernel."""
from __future__ import annotations

import numpy as np
import pytest

from convert.models.tiled_depthwise import plan_tiles, tile_padding, tile_reads_input
from tests.conftest import require_module
from tests.support.tflite_graph import depthwise_taps

keras = require_module("keras")


@pytest.mark.parametrize("kernel", [(k, k) for k in range(1, 16)] + [(3, 11), (9, 5), (1, 31), (13, 2)])
def test_tiles_cover_the_kernel_once_within_25_taps(kernel):
    tiles = plan_tiles(kernel)
    cover = np.zeros(kernel, int)
    for t in tiles:
        assert t.shape[0] * t.shape[1] <= 25, (kernel, t)
        cover[t.rows[0]:t.rows[1], t.cols[0]:t.cols[1]] += 1
    assert (cover == 1).all(), (kernel, tiles)
    if kernel[0] * kernel[1] <= 25:
        assert len(tiles) == 1


def test_tiling_of_mixnet_kernels():
    assert [t.shape for t in plan_tiles((7, 7))] == [(3, 7), (3, 7), (1, 7)]
    assert len(plan_tiles((9, 9))) == 4 and len(plan_tiles((11, 11))) == 6


def test_tile_padding_matches_same_padding_for_the_whole_kernel():
    # the whole kernel as one tile: TensorFlow's SAME padding (14 px, k 7, stride 2: total 5, 2 before)
    assert tile_padding(14, 7, 2, 0, 7) == (2, 3)
    assert tile_padding(13, 7, 1, 0, 7) == (3, 3)
    # a tile right of the centre reads further right: less padding before (crop), more after
    assert tile_padding(13, 7, 1, 6, 7) == (-3, 3)
    with pytest.raises(ValueError, match="not inside a kernel of 7"):
        tile_padding(13, 7, 1, 5, 8)
    assert not tile_reads_input(1, 11, 1, 0, 2) and tile_reads_input(1, 11, 1, 4, 6)


def _direct_and_tiled(kernel_size, stride, shape, seed=0):
    from convert.models.tiled_depthwise import TiledDepthwiseConv2D
    rng = np.random.default_rng(seed)
    inp = keras.Input(shape, batch_size=1)
    direct = keras.layers.DepthwiseConv2D(kernel_size, strides=stride, padding="same")
    a = keras.Model(inp, direct(inp))
    kernel = rng.normal(0, 0.3, tuple(direct.kernel.shape)).astype(np.float32)
    bias = rng.normal(0, 0.5, shape[-1]).astype(np.float32)
    direct.set_weights([kernel, bias])
    tiled = TiledDepthwiseConv2D(kernel_size, stride)
    b = keras.Model(inp, tiled(inp))
    tiled.set_weights([kernel, bias])
    return a, b, rng.normal(0, 1, (1,) + shape).astype(np.float32)


@pytest.mark.parametrize("kernel_size, stride, shape", [
    (7, 1, (14, 14, 6)), (7, 2, (14, 14, 6)), (9, 1, (13, 11, 4)), (9, 2, (13, 11, 4)), (11, 2, (7, 7, 3)),
    (11, 1, (2, 3, 3)), (11, 2, (1, 1, 5)), ((5, 7), 1, (9, 9, 2)), (5, 1, (8, 8, 2))])
def test_tiled_layer_computes_the_same_as_the_direct_one(kernel_size, stride, shape):
    a, b, x = _direct_and_tiled(kernel_size, stride, shape)
    ya, yb = a(x).numpy(), b(x).numpy()
    assert ya.shape == yb.shape
    np.testing.assert_allclose(yb, ya, rtol=0, atol=1e-5 * max(1.0, np.abs(ya).max()))


def _tflite(model, int8=False, data=None):
    """float32, or int8 the way exports do it (every tensor calibrated on its own range)."""
    from convert.export.exporter import convert_model
    return convert_model(model, "int8" if int8 else "float32", "int8", data if int8 else None, False, "own")[0]


def _run(flatbuffer, x):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=flatbuffer, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(inp["dtype"])
    it.set_tensor(inp["index"], x)
    it.invoke()
    y = it.get_tensor(out["index"])
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


def test_converted_tiles_have_no_large_kernel_and_the_same_output():
    from ai_edge_litert.tools import flatbuffer_utils

    from convert.export.inspect_model import inspect_flatbuffer
    a, b, x = _direct_and_tiled(7, 2, (14, 14, 8))
    fa, fb = _tflite(a), _tflite(b)
    np.testing.assert_allclose(_run(fb, x), _run(fa, x), rtol=0, atol=1e-4)
    inspection = inspect_flatbuffer(fb)
    assert inspection.ops["DEPTHWISE_CONV_2D"] == 3 and inspection.ops["ADD"] == 2, inspection.ops
    assert inspection.delegation.partitions == 1 and not inspection.delegation.undelegated
    flat = flatbuffer_utils.convert_bytearray_to_object(fb)
    graph, codes = flat.subgraphs[0], [max(c.builtinCode, c.deprecatedBuiltinCode) for c in flat.operatorCodes]
    taps = [int(np.prod(graph.tensors[op.inputs[1]].shape[1:3])) for op in graph.operators
            if codes[op.opcodeIndex] == 4]                  # BuiltinOperator.DEPTHWISE_CONV_2D
    assert len(taps) == 3 and max(taps) <= 25, taps


def _snr_db(reference, value):
    return 10 * np.log10(np.sum(reference ** 2) / max(np.sum((value - reference) ** 2), 1e-20))


def test_int8_tiles_are_as_faithful_as_the_direct_kernel():
    """conv 1x1 -> depthwise 9x9 (+ BatchNorm) -> swish, fixed random weights, int8 vs Keras float: the tiles'
    partial sums are quantized on their own, which may cost a little, not more than 3 dB."""
    from convert.export.depthwise_form import tile_large_depthwise
    rng = np.random.default_rng(3)
    inp = keras.Input((16, 16, 8), batch_size=1)
    x = keras.layers.Conv2D(24, 1)(inp)
    x = keras.layers.DepthwiseConv2D(9, padding="same", use_bias=False)(x)
    bn = keras.layers.BatchNormalization()
    x = keras.layers.Activation("swish")(bn(x))
    model = keras.Model(inp, keras.layers.Conv2D(8, 1)(x))
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 24).astype(np.float32))
    tiled, replaced = tile_large_depthwise(model)
    assert dict(replaced) == {"9x9": 1}
    data = [rng.normal(0, 1, (16, 16, 8)).astype(np.float32) for _ in range(40)]
    heldout = np.stack(data[-10:])
    ref = model(heldout).numpy()
    snr = {}
    for name, m in (("direct", model), ("tiled", tiled)):
        flat = _tflite(m, int8=True, data=data[:30])
        snr[name] = _snr_db(ref, np.concatenate([_run(flat, h[None]) for h in heldout]))
    assert snr["tiled"] > 25 and snr["tiled"] >= snr["direct"] - 3, snr


def test_mixnet_rewrite_keeps_the_function_and_the_original_model():
    from convert.export.depthwise_form import count_large_kernels, tile_large_depthwise
    from convert.models.registry import build_classifier
    from convert.models.tiled_depthwise import TiledDepthwiseConv2D
    rng = np.random.default_rng(1)
    model = build_classifier("mixnet_s", (64, 64), 5, activation="linear")
    for layer in model.layers:      # BatchNorm statistics far from identity, so a wrong fold shows
        if isinstance(layer, keras.layers.BatchNormalization):
            n = int(layer.gamma.shape[0])
            layer.moving_mean.assign(rng.normal(0, 0.5, n).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype(np.float32))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.2, n).astype(np.float32))
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    before = model(x).numpy()
    tiled, replaced = tile_large_depthwise(model)
    assert dict(replaced) == {"7x7": 8, "9x9": 5, "11x11": 1}
    assert not count_large_kernels(tiled)
    assert sum(isinstance(l, TiledDepthwiseConv2D) for l in tiled.layers) == 14
    after = tiled(x).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-4 * np.abs(before).max())
    np.testing.assert_array_equal(model(x).numpy(), before)       # the original model is untouched
    assert count_large_kernels(model) == replaced


def test_a_model_without_large_kernels_is_returned_as_is():
    from convert.export.depthwise_form import apply
    inp = keras.Input((16, 16, 4), batch_size=1)
    model = keras.Model(inp, keras.layers.DepthwiseConv2D(5, padding="same")(inp))
    assert apply(model, "tiled") == (model, {})
    with pytest.raises(Exception, match="depthwise form 'tiles'; choose one of tiled, direct"):
        apply(model, "tiles")


@pytest.mark.parametrize("form", ["tiled", "direct"])
def test_exporter_writes_the_form_and_reports_it(form, tmp_path):
    """export_tflite on a small classifier with one 7x7 depthwise conv + BatchNorm: the file has the form asked for,
    the report's depthwise row says so, and the fidelity against the (untouched) Keras model is float-exact."""
    from convert.export import export_tflite
    rng = np.random.default_rng(5)
    inp = keras.Input((24, 24, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = keras.layers.BatchNormalization()(keras.layers.DepthwiseConv2D(7, padding="same", use_bias=False)(x))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Activation("swish")(x))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="predictions")(x))
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) + (1.0 if w.ndim == 1 else 0.0)
                       for w in model.get_weights()])
    images = [rng.uniform(0, 255, (24, 24, 3)).astype(np.float32) for _ in range(4)]
    report = export_tflite(model, tmp_path / f"{form}.tflite", quantization="float32", heldout=images,
                           metadata={"task": "classification", "architecture": "test", "labels": ["a", "b", "c"]},
                           depthwise=form, progress=False)
    row = dict(report.rows())["depthwise"]
    taps = depthwise_taps(tmp_path / f"{form}.tflite")
    if form == "tiled":
        assert row == "tiled: 1 kernel above 25 taps (7x7 x1) as tiles of <= 25 taps" and max(taps) <= 25, (row, taps)
    else:
        assert row == "direct: 1 kernel above 25 taps (7x7 x1) on XNNPACK's slow path" and taps == [49], (row, taps)
    assert report.fidelity[0].snr_db > 80 and report.fidelity[0].top1_agreement == 1.0


@pytest.mark.slow
def test_export_report_states_the_depthwise_form(tmp_path, capsys):
    """Slow (two MixNet-S conversions, 1-4 min on this machine): `convert-model export` of MixNet-S: tiled by default (no kernel above 25 taps in the file), direct on request;
    the report's depthwise row says which and how many kernels."""
    from convert.cli import main

    base = ["export", "--arch", "mixnet_s", "--input-size", "64", "--num-classes", "3", "--quantization", "float32"]
    assert main(base + ["--output", str(tmp_path / "tiled.tflite")]) == 0
    out = capsys.readouterr().out
    assert "tiled: 14 kernels above 25 taps (7x7 x8, 9x9 x5, 11x11 x1) as tiles of <= 25 taps" in out
    assert main(base + ["--depthwise", "direct", "--output", str(tmp_path / "direct.tflite")]) == 0
    assert "direct: 14 kernels above 25 taps" in capsys.readouterr().out
    assert max(depthwise_taps(tmp_path / "tiled.tflite")) <= 25
    assert sum(t > 25 for t in depthwise_taps(tmp_path / "direct.tflite")) == 14
