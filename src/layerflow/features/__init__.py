"""Feature specs: fitted preprocessing of tabular columns for Keras models.

Example:
    >>> spec = lf.feature_spec(df, label="y").numeric(lf.all_numeric(), normalizer="standard").fit()
    >>> inputs, dense = spec.keras_inputs()
"""

from layerflow.features.errors import SpecColumnError, SpecError, SpecFileError, SpecTypeError
from layerflow.features.selectors import Selector, all_nominal, all_numeric, has_type, matches, starts_with
from layerflow.features.spec import FeatureSpec, NotFittedError, feature_spec, load_feature_spec

__all__ = [
    "FeatureSpec",
    "NotFittedError",
    "Selector",
    "SpecColumnError",
    "SpecError",
    "SpecFileError",
    "SpecTypeError",
    "all_nominal",
    "all_numeric",
    "feature_spec",
    "has_type",
    "load_feature_spec",
    "matches",
    "starts_with",
]
