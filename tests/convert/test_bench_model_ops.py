"""bench.model_ops cuts every op of a .tflite model into a one-op model: each one computes, from the whole
model's own intermediate tensors, exactly the tensor the whole model computed (float32 and int8)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_module

keras = require_module("keras")


def _small_model():
    rng = np.random.default_rng(0)
    inp = keras.Input((12, 12, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    y = keras.layers.DepthwiseConv2D(5, strides=2, padding="same")(x)
    y = keras.layers.Activation("swish")(y)
    z = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(z))
    model.set_weights([rng.normal(0, 0.4, w.shape).astype(np.float32) for w in model.get_weights()])
    return model, [rng.uniform(0, 1, (12, 12, 3)).astype(np.float32) for _ in range(8)]


@pytest.mark.parametrize("quantization", ["float32", "int8"])
def test_each_cut_op_reproduces_the_whole_models_tensor(quantization, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from bench.model_ops import cut_ops, profile, report
    from convert.export.exporter import convert_model
    model, images = _small_model()
    path = tmp_path / f"m-{quantization}.tflite"
    path.write_bytes(convert_model(model, quantization, "int8", images if quantization == "int8" else None,
                                   False, "own")[0])
    with pytest.warns(UserWarning, match="preserve_all_tensors"):
        whole = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    whole.allocate_tensors()
    d = whole.get_input_details()[0]
    x = images[0][None] if d["dtype"] == np.float32 else np.round(images[0][None] / d["quantization"][0]
                                                                   + d["quantization"][1]).astype(d["dtype"])
    whole.set_tensor(d["index"], x)
    whole.invoke()
    by_name = {t["name"]: t["index"] for t in whole.get_tensor_details()}
    ops = cut_ops(path)
    assert len(ops) == sum(o["op_name"] != "DELEGATE" for o in whole._get_ops_details()) >= 5
    for op in ops:
        one = Interpreter(model_content=op.content)
        one.allocate_tensors()
        for detail in one.get_input_details():
            one.set_tensor(detail["index"], whole.get_tensor(by_name[detail["name"]]))
        one.invoke()
        for detail in one.get_output_details():
            np.testing.assert_array_equal(one.get_tensor(detail["index"]), whole.get_tensor(by_name[detail["name"]]),
                                          err_msg=f"op {op.index} {op.op}")
    assert any(o.group == "DEPTHWISE 5x5/s2" for o in ops)
    models, whole_times = profile([str(path)], rounds=1, runs=2)
    text = report([str(path)], models, whole_times)
    assert "DEPTHWISE 5x5/s2" in text and f"{len(ops)} ops" in text
