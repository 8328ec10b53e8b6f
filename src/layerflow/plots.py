"""Static plots of training histories (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from layerflow.backend import training_stack
from layerflow.errors import InvalidValueError
from layerflow.history import history_frame

_SPLIT_STYLE = {"training": {"color": "#1f77b4", "marker": "o"}, "validation": {"color": "#ff7f0e", "marker": "s"}}


@training_stack("lf.plot_history")
def plot_history(
    history: Any,
    path: str | Path | None = None,
    metrics: Sequence[str] | None = None,
    dpi: int = 100,
):
    """Plots a training history: one panel per metric, training vs validation.

    Args:
        history: a keras ``History``, its ``.history`` dict, or a ``history_frame`` DataFrame.
        path: when given, the figure is also saved there (format from the suffix, e.g. .png, .svg).
        metrics: which metrics to show (default: all, loss first).
        dpi: resolution of a saved raster file.

    Returns:
        A ``matplotlib.figure.Figure``.

    Example:
        >>> fig = lf.plot_history(model.fit(x, y, epochs=5, validation_split=0.2), "history.png")
    """
    import pandas as pd
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    frame = history if isinstance(history, pd.DataFrame) else history_frame(history)
    available = sorted(dict.fromkeys(frame["metric"]), key=lambda m: m != "loss")
    chosen = list(metrics) if metrics is not None else available
    missing = [m for m in chosen if m not in available]
    if missing:
        raise InvalidValueError(f"Metrics {missing} are not in the history; it has {available}.")
    if not chosen:
        raise InvalidValueError("The history holds no metrics to plot (did model.fit run any epoch?).")

    figure = Figure(figsize=(6.4, 2.6 * len(chosen)), layout="constrained")
    axes = figure.subplots(len(chosen), 1, sharex=True, squeeze=False)[:, 0]
    for ax, metric in zip(axes, chosen):
        for split, rows in frame[frame["metric"] == metric].groupby("split", sort=False):
            ax.plot(rows["epoch"], rows["value"], label=split, markersize=3, **_SPLIT_STYLE.get(split, {}))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("epoch")
    epochs = frame["epoch"]
    if len(epochs) and epochs.max() <= 20:
        axes[-1].set_xticks(range(1, int(epochs.max()) + 1))
    else:
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=dpi)
    return figure
