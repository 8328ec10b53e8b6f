"""layerflow: from a Keras model to a tracked, compared, tuned and served model.

Example:
    >>> import layerflow as lf
    >>> from layerflow import keras            # Keras 3 on the torch backend (or KERAS_BACKEND=jax)
    >>> FLAGS = lf.flags(units=256, dropout=0.4, epochs=10)
    >>> (x_train, y_train), (x_test, y_test) = lf.datasets.fashion_mnist()
"""

from __future__ import annotations

import os as _os
from typing import Any

_os.environ.setdefault("KERAS_BACKEND", "torch")

from layerflow import datasets
from layerflow.backend import backend_info
from layerflow.errors import LayerflowError
from layerflow.flags import Flag, FlagError, Flags, flag, flags
from layerflow.history import history_frame
from layerflow.plots import plot_history
from layerflow.runs import (
    RunNotFoundError,
    clean_runs,
    compare_runs,
    copy_run,
    log_metrics,
    ls_runs,
    purge_runs,
    rerun,
    run_info,
    run_properties,
    training_run,
    view_run,
    write_run_data,
)
from layerflow.summary import model_summary

__version__ = "0.1.0"

__all__ = [
    "Flag",
    "FlagError",
    "Flags",
    "LayerflowError",
    "RunNotFoundError",
    "all_nominal",
    "all_numeric",
    "backend_info",
    "clean_runs",
    "cloud",
    "compare_runs",
    "copy_run",
    "data",
    "datasets",
    "estimators",
    "export_model",
    "export_run",
    "fast_fit_status",
    "fastfit",
    "feature_spec",
    "features",
    "flag",
    "flags",
    "has_type",
    "history_frame",
    "keras",
    "load_feature_spec",
    "log_metrics",
    "ls_runs",
    "matches",
    "model_summary",
    "plot_history",
    "predict",
    "purge_runs",
    "rerun",
    "run_info",
    "run_properties",
    "serve",
    "starts_with",
    "training_run",
    "tuning",
    "tuning_run",
    "ui",
    "view_run",
    "write_run_data",
]


# Imported on first use: they bring Keras (and torch behind it), which commands that never
# train (listing runs, serving) should not pay for.
_LAZY = {
    "data": ("layerflow.data", None),
    "deploy": ("layerflow.deploy", None),
    "estimators": ("layerflow.estimators", None),
    "features": ("layerflow.features", None),
    "feature_spec": ("layerflow.features", "feature_spec"),
    "load_feature_spec": ("layerflow.features", "load_feature_spec"),
    "all_numeric": ("layerflow.features", "all_numeric"),
    "all_nominal": ("layerflow.features", "all_nominal"),
    "has_type": ("layerflow.features", "has_type"),
    "starts_with": ("layerflow.features", "starts_with"),
    "matches": ("layerflow.features", "matches"),
    "export_model": ("layerflow.deploy", "export_model"),
    "export_run": ("layerflow.deploy", "export_run"),
    "serve": ("layerflow.deploy", "serve"),
    "fast_fit_status": ("layerflow.fastfit", "fast_fit_status"),
    "fastfit": ("layerflow.fastfit", None),  # lf.fastfit.enable(model) / disable(model)
    "predict": ("layerflow.deploy", "predict"),
    "tuning": ("layerflow.tuning", None),
    "cloud": ("layerflow.cloud", None),
    "tuning_run": ("layerflow.tuning", "tuning_run"),
    "ui": ("layerflow.ui", None),  # a callable module: lf.ui(runs_dir, port) starts the UI
}


def __getattr__(name: str) -> Any:
    from layerflow.backend import load_keras, training_stack

    if name == "keras":
        value = load_keras()
    elif name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        with training_stack(f"lf.{name}"):  # a serving-only install lacks what training needs
            module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
    else:
        raise AttributeError(f"module 'layerflow' has no attribute {name!r}")
    globals()[name] = value
    return value
