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

from layerflow import datasets  # noqa: E402
from layerflow.backend import backend_info  # noqa: E402
from layerflow.flags import Flag, FlagError, Flags, flag, flags  # noqa: E402
from layerflow.history import history_frame  # noqa: E402
from layerflow.plots import plot_history  # noqa: E402
from layerflow.runs import (  # noqa: E402
    RunNotFoundError,
    compare_runs,
    ls_runs,
    run_properties,
    training_run,
    view_run,
    write_run_data,
)
from layerflow.summary import model_summary  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Flag",
    "FlagError",
    "Flags",
    "RunNotFoundError",
    "backend_info",
    "compare_runs",
    "datasets",
    "flag",
    "flags",
    "history_frame",
    "keras",
    "ls_runs",
    "model_summary",
    "plot_history",
    "run_properties",
    "training_run",
    "view_run",
    "write_run_data",
]


def __getattr__(name: str) -> Any:
    # Keras (and torch behind it) is imported on first use, so that commands which never
    # train (listing runs, serving) start fast.
    if name == "keras":
        from layerflow.backend import load_keras

        module = load_keras()
        globals()["keras"] = module
        return module
    raise AttributeError(f"module 'layerflow' has no attribute {name!r}")
