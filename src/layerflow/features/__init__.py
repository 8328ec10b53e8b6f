"""Feature specs: fitted preprocessing of tabular columns for Keras models."""

from layerflow.features.selectors import Selector, all_nominal, all_numeric, matches, starts_with
from layerflow.features.spec import FeatureSpec, NotFittedError, feature_spec, load_feature_spec

__all__ = [
    "FeatureSpec",
    "NotFittedError",
    "Selector",
    "all_nominal",
    "all_numeric",
    "feature_spec",
    "load_feature_spec",
    "matches",
    "starts_with",
]
