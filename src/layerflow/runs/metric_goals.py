"""Which way a metric improves, and which recorded metric ranks runs when none is named.

One owner for both decisions: the tuning summary, the early-stopping scheduler and the
UI's tuning page all ask here, so a metric cannot be minimised in one place and maximised
in another.

Example:
    >>> metric_mode("val_mae"), metric_mode("metric_val_accuracy")
    ('min', 'max')
    >>> default_metric(["metric_loss", "metric_val_accuracy"])
    ('metric_val_accuracy', 'max')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Mode = Literal["min", "max"]

# Words whose metrics improve downwards (losses and errors); everything else (accuracy, AUC,
# precision, R^2 ...) improves upwards.
_LOWER_IS_BETTER = (
    "loss",
    "error",
    "mse",
    "mae",
    "rmse",
    "mape",
    "msle",
    "hinge",
    "crossentropy",
    "divergence",
    "poisson",
    "cosh",
)

# The ranking metric when none is named: the first of these that the runs recorded.
DEFAULT_METRICS = (
    "eval_accuracy",
    "metric_val_accuracy",
    "eval_loss",
    "metric_val_loss",
    "metric_accuracy",
    "metric_loss",
)


def metric_mode(metric: str) -> Mode:
    """``"min"`` for losses and errors (``val_loss``, ``mae``, ``eval_rmse`` ...), else ``"max"``.

    Args:
        metric: a metric name, bare (``val_mae``) or as a runs-table column (``metric_val_mae``).
    """
    name = metric.lower()
    return "min" if any(word in name for word in _LOWER_IS_BETTER) else "max"


def metric_column(metric: str) -> str:
    """The runs-table column of a metric name: ``val_loss`` -> ``metric_val_loss``; ``eval_*`` kept."""
    return metric if metric.startswith(("eval_", "metric_")) else f"metric_{metric}"


def default_metric(columns: Iterable[str]) -> tuple[str, Mode] | None:
    """The column (and its mode) that ranks runs when no metric is named, or None.

    Args:
        columns: the runs-table columns that hold a value for at least one run.
    """
    present = set(columns)
    column = next((name for name in DEFAULT_METRICS if name in present), None)
    return None if column is None else (column, metric_mode(column))
