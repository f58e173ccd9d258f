"""Own-range int8 calibration (convert/export/calibration_ranges.py): every activation gets the int8 scale of
its own range, including the tensors an in-place op (the hard-swish's last MUL, a residual ADD) overwrites while
TFLite's calibrator logs them. Small graphs with fixed weights, converted for real, read back from the flatbuffer."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_module

keras = require_module("keras")
from keras import layers  # noqa: E402

from convert.export.calibration_ranges import RangeFix, own_range_calibration  # noqa: E402
from convert.export.tensor_fidelity import tensor_fidelity  # noqa: E402
from convert.export.tflite_convert import convert_keras  # noqa: E402
from convert.models.layers import HardSwish  # noqa: E402


def _block(residual: bool) -> keras.Model:
    """conv 3x3 -> hard-swish ((x/6) * relu6(x+3)) -> conv 1x1 (-> + input): weights from a fixed seed."""
    rng = np.random.default_rng(0)
    inp = keras.Input((12, 12, 8), batch_size=1)
    conv = layers.Conv2D(16, 3, padding="same", name="conv")
    y = HardSwish("xnnpack", name="hswish")(conv(inp))
    proj = layers.Conv2D(8, 1, name="project")
    out = proj(y)
    if residual:
        out = layers.Add(name="residual")([inp, out])
    model = keras.Model(inp, out)
    conv.set_weights([rng.normal(0, 0.6, (3, 3, 8, 16)).astype("float32"), rng.normal(0, 0.5, 16).astype("float32")])
    proj.set_weights([rng.normal(0, 0.4, (1, 1, 16, 8)).astype("float32"), np.zeros(8, np.float32)])
    return model


def _images(n: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.normal(0, 1, (12, 12, 8)).astype(np.float32) for _ in range(n)]


def _convert(model, own: bool):
    calib = _images()
    if not own:
        return convert_keras(model, "int8", "int8", calib, progress=False)[0], None
    with own_range_calibration(RangeFix()) as fix:
        flatbuffer = convert_keras(model, "int8", "int8", calib, progress=False)[0]
    return flatbuffer, fix


def _coverage_ratio(row) -> float:
    """Width the int8 scale covers / width of the values the tensor actually takes (0 included, as in int8)."""
    lo, hi = min(row.float_range[0], 0.0), max(row.float_range[1], 0.0)
    return (row.int8_range[1] - row.int8_range[0]) / (hi - lo)


@pytest.mark.parametrize("residual", [False, True])
def test_every_activation_is_quantized_on_its_own_range(residual):
    model = _block(residual)
    float_fb = convert_keras(model, "float32", progress=False)[0]
    own, fix = _convert(model, own=True)
    rows = [r for r in tensor_fidelity(float_fb, own, _images()) if "serving_default" not in r.name]
    assert len(rows) >= 4, [r.name for r in rows]
    for r in rows:
        # the calibration images are the images measured here: the scale covers the range, with no slack
        assert 0.99 <= _coverage_ratio(r) <= 1.02, (r.name, r.float_range, r.int8_range)
    assert fix.tensors >= len(rows) - 1
    assert "own ranges for all" in fix.describe()


def test_own_ranges_are_at_least_as_faithful_as_the_calibrators():
    """The hard-swish's x/6 is where TFLite's calibrator (TF 2.20) records the product's range: the own-range
    export must quantize it at least as finely and the output at least as faithfully."""
    model = _block(residual=True)
    float_fb = convert_keras(model, "float32", progress=False)[0]
    images = _images()
    own = {r.name: r for r in tensor_fidelity(float_fb, _convert(model, own=True)[0], images)}
    stock = {r.name: r for r in tensor_fidelity(float_fb, _convert(model, own=False)[0], images)}
    x6 = [n for n in own if n.endswith("hswish_1/mul") or n.endswith("hswish/mul")]
    assert x6, sorted(own)
    assert _coverage_ratio(own[x6[0]]) <= _coverage_ratio(stock[x6[0]]) + 1e-6
    out = max(own, key=lambda n: own[n].index)          # the model output
    assert own[out].snr_db >= stock[out].snr_db - 0.1, (own[out].snr_db, stock[out].snr_db)


def test_range_fix_names_what_the_calibrator_widened():
    fix = RangeFix(tensors=3, widened=[("a/mul", 5.9), ("b/add", 1.4)])
    text = fix.describe()
    assert "3 activation tensors" in text and "widened 2 of them (up to 5.9x)" in text
