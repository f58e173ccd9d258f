"""Slow: build, BN-calibrate and export MixNet-S/-M and MobileNetV3-Large, check the int8 graphs are fully
delegated to XNNPACK (one partition), and that MixNet's exports have their depthwise kernels above 25 taps tiled
(the direct variants keep them). Run with `make test-slow`."""
from __future__ import annotations

import pytest

from convert.bench import export_variants
from edge.modelbench import bench_model
from tests.support.tflite_graph import depthwise_taps


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mixnet_s", "mixnet_m", "mobilenetv3_large"])
def test_int8_fully_delegated(arch, tmp_path):
    variants = dict(export_variants(arch, (128, 128), None, tmp_path))
    int8 = bench_model(variants[f"{arch} int8"], threads=(1,), runs=3, warmup=1)
    assert int8.delegation.partitions == 1, int8.delegation.describe()
    assert not set(int8.delegation.undelegated) - {"QUANTIZE", "SOFTMAX"}
    assert max(depthwise_taps(variants[f"{arch} int8"])) <= 25
    if arch.startswith("mixnet"):
        assert max(depthwise_taps(variants[f"{arch} int8-direct-dw"])) >= 49
        assert max(depthwise_taps(variants[f"{arch} float32"])) <= 25
