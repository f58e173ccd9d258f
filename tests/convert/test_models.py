"""Every registered model builds and runs; exact reference parameter counts; Keras weights load."""
from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest

from edge.contract.errors import ConfigError, InputError
from convert.models import FEATURE_STRIDES, MODELS, build_classifier, build_features


@pytest.mark.parametrize("name", sorted(MODELS))
def test_build_and_forward_every_model(name):
    model = build_classifier(name, input_size=(64, 96), num_classes=7)
    assert tuple(model.inputs[0].shape) == (1, 64, 96, 3)
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 3)).astype(np.float32)
    y = np.asarray(model(x, training=False))
    assert y.shape == (1, 7)
    np.testing.assert_allclose(y.sum(), 1.0, rtol=1e-5)   # softmax probabilities
    assert model.layers[-1].name == "predictions"


@pytest.mark.parametrize("name, expected", [("mixnet_s", 4_134_606), ("mixnet_m", 5_014_382)])
def test_mixnet_trainable_parameters_match_reference(name, expected):
    model = build_classifier(name, input_size=(224, 224), num_classes=1000)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected


@pytest.mark.parametrize("name, keras_fn", [("mobilenetv3_small", "MobileNetV3Small"),
                                            ("mobilenetv3_large", "MobileNetV3Large")])
def test_mobilenetv3_matches_keras_reference_and_loads_its_h5(tmp_path, name, keras_fn):
    """Write a keras.applications model's weights in the legacy .h5 layout of the ImageNet files,
    load them into ours: same parameter count, identical outputs."""
    from keras.src.legacy.saving import legacy_h5_format
    ref = getattr(keras.applications, keras_fn)(input_shape=(96, 96, 3), weights=None, classes=10)
    rng = np.random.default_rng(1)
    ref.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) if "variance" not in v.path
                     else rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                     for w, v in zip(ref.get_weights(), ref.weights)])
    path = tmp_path / "ref.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, ref)
    ours = build_classifier(name, input_size=(96, 96), num_classes=10, weights=path)
    assert ours.count_params() == ref.count_params()
    x = rng.uniform(0, 255, (1, 96, 96, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), rtol=1e-4, atol=1e-6)
    # the XNNPACK-friendly hard-swish computes the same function with the same weights
    alt = build_classifier(name, input_size=(96, 96), num_classes=10, weights=path, hard_swish="xnnpack")
    np.testing.assert_allclose(np.asarray(alt(x)), np.asarray(ref(x)), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["mobilenetv3_small", "mobilenetv3_large", "mixnet_s"])
def test_features_at_strides_8_16_32(name):
    model = build_features(name, input_size=(128, 160))
    assert [tuple(o.shape[1:3]) for o in model.outputs] == [(128 // s, 160 // s) for s in FEATURE_STRIDES]


def test_bad_requests_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown architecture 'resnet9'.*mobilenetv3_small"):
        build_classifier("resnet9")
    with pytest.raises(ConfigError, match="alpha"):
        build_classifier("mixnet_s", alpha=0.5)
    with pytest.raises(ConfigError, match="multiples of 32"):
        build_features("mixnet_s", input_size=(100, 100))
    with pytest.raises(InputError, match="does not exist"):
        build_classifier("mixnet_s", input_size=(64, 64), num_classes=3, weights=tmp_path / "missing.h5")


def test_imagenet_offline_is_a_clear_error():
    """No network here: the real Keras download path is taken and fails with a message saying what to do."""
    try:
        build_classifier("mobilenetv3_small", input_size=(224, 224), weights="imagenet")
    except InputError as exc:
        assert "ImageNet weights" in str(exc) and "~/.keras/models" in str(exc)
    else:  # online (or cached): the weights loaded
        pass
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        build_classifier("mixnet_s", weights="imagenet")
