"""Errors the estimators raise about their inputs, their state and their ``model_dir``."""

from __future__ import annotations

from layerflow.errors import LayerflowError


class EstimatorError(LayerflowError, ValueError):
    """Bad estimator input: a missing or invalid label, a bad option, data of the wrong shape."""


class MissingColumnError(LayerflowError, KeyError):
    """A column the estimator needs (label, weight or a spec column) is not in the data."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class NotTrainedError(LayerflowError, RuntimeError):
    """``predict``, ``evaluate`` or ``export_parts`` on an estimator that was never trained."""


class ModelDirError(LayerflowError, ValueError):
    """A ``model_dir`` that holds another estimator kind, configuration or feature spec."""
