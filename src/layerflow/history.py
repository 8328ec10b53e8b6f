"""Keras training history as a tidy table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from layerflow.backend import training_stack
from layerflow.errors import InvalidTypeError, InvalidValueError

if TYPE_CHECKING:
    import pandas as pd

VALIDATION_PREFIX = "val_"


def _history_dict(history: Any) -> tuple[dict[str, list[float]], list[int]]:
    if hasattr(history, "history") and isinstance(history.history, Mapping):
        metrics = dict(history.history)
        epochs = list(getattr(history, "epoch", []) or [])
    elif isinstance(history, Mapping):
        metrics, epochs = dict(history), []
    else:
        raise InvalidTypeError(
            f"Expected a keras History (the return value of model.fit) or a dict of "
            f"metric name -> list of values; got {type(history).__name__}."
        )
    lengths = {len(v) for v in metrics.values()}
    if len(lengths) > 1:
        raise InvalidValueError(f"History metrics have different lengths {sorted(lengths)}; expected one per epoch.")
    n_epochs = lengths.pop() if lengths else 0
    if len(epochs) != n_epochs:
        epochs = list(range(n_epochs))
    return metrics, [e + 1 for e in epochs]


def split_metric_name(name: str) -> tuple[str, str]:
    """Splits a Keras history key into (metric, split): ``val_loss`` -> ("loss", "validation")."""
    if name.startswith(VALIDATION_PREFIX):
        return name[len(VALIDATION_PREFIX) :], "validation"
    return name, "training"


@training_stack("lf.history_frame")
def history_frame(history: Any) -> pd.DataFrame:
    """Returns a long DataFrame with columns ``epoch, metric, value, split``.

    Args:
        history: the ``History`` returned by ``model.fit`` or its ``.history`` dict.

    Returns:
        A pandas DataFrame, one row per epoch and metric (``split`` is training or validation).

    Example:
        >>> history = model.fit(x, y, epochs=3, validation_split=0.2)
        >>> lf.history_frame(history).query("metric == 'accuracy'")
    """
    import pandas as pd

    metrics, epochs = _history_dict(history)
    rows = []
    for key, values in metrics.items():
        metric, split = split_metric_name(key)
        rows += [
            {"epoch": epoch, "metric": metric, "value": float(value), "split": split}
            for epoch, value in zip(epochs, values)
        ]
    frame = pd.DataFrame(rows, columns=["epoch", "metric", "value", "split"])
    return frame.astype({"epoch": "int64", "value": "float64"})
