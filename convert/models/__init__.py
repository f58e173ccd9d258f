"""Classifier architectures (MobileNetV3, MixNet) and the registry that builds them by name."""
from convert.models.registry import FEATURE_STRIDES, MODELS, build_classifier, build_features, get_info

__all__ = ["FEATURE_STRIDES", "MODELS", "build_classifier", "build_features", "get_info"]
