"""Training with evaluation every few epochs, and early stopping on an evaluation metric."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from layerflow.estimators.errors import EstimatorError
from layerflow.estimators.inputs import as_dataset


@dataclass
class EarlyStopping:
    """Stops training when ``metric`` has not improved by ``min_delta`` for ``patience`` evaluations.

    Args:
        metric: an ``evaluate`` key, e.g. "loss", "accuracy", "auc".
        patience: evaluations without improvement before stopping.
        mode: "min", "max", or "auto" (max for accuracy/auc/precision/recall/r2, min otherwise).
        min_delta: the least change that counts as an improvement.

    Example:
        >>> lf.estimators.EarlyStopping("accuracy", patience=2)
    """

    metric: str = "loss"
    patience: int = 3
    mode: str = "auto"
    min_delta: float = 0.0
    best: float | None = field(default=None, init=False)
    best_epoch: int | None = field(default=None, init=False)
    _waited: int = field(default=0, init=False)

    def __post_init__(self):
        if self.mode == "auto":
            self.mode = (
                "max"
                if self.metric.split("/")[0] in ("accuracy", "auc", "auc_precision_recall", "precision", "recall", "r2")
                else "min"
            )
        if self.mode not in ("min", "max"):
            raise EstimatorError(f"mode={self.mode!r} must be 'min', 'max' or 'auto'.")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise EstimatorError(f"patience={self.patience!r} must be a positive whole number.")

    def update(self, metrics: dict[str, float], epoch: int) -> bool:
        """Takes one evaluation; True when training should stop."""
        if self.metric not in metrics:
            raise EstimatorError(
                f"Early stopping watches {self.metric!r}, which evaluate() does not report; "
                f"it reports {sorted(metrics)}."
            )
        value = metrics[self.metric]
        better = self.best is None or (
            value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        )
        if better and not math.isnan(value):
            self.best, self.best_epoch, self._waited = value, epoch, 0
            return False
        self._waited += 1
        return self._waited >= self.patience


def train_and_evaluate(
    estimator: Any,
    train_data: Any,
    eval_data: Any,
    epochs: int | None = None,
    every_n_epochs: int = 1,
    early_stopping: EarlyStopping | str | None = None,
) -> dict[str, Any]:
    """Trains ``estimator`` and evaluates it on ``eval_data`` every ``every_n_epochs`` epochs.

    Each evaluation goes into the epoch's line of a tracked run's metrics (as ``eval_*``);
    the last one is returned and becomes the run's evaluation.

    Args:
        estimator: any lf.estimators estimator.
        train_data, eval_data: a lf.data Dataset, a DataFrame or a CSV/Parquet path each.
        epochs: epochs (boosting rounds for trees) in all; default 10 for Keras estimators,
            n_trees for boosted trees.
        every_n_epochs: how often to evaluate.
        early_stopping: an ``EarlyStopping``, or a metric name (patience 3), or None.

    Returns:
        ``{"evaluation": last metrics, "history": [(epoch, metrics), ...], "stopped_early": bool,
        "best_epoch": the best evaluation's epoch or None}``.

    Example:
        >>> result = lf.estimators.train_and_evaluate(est, train, test, epochs=20,
        ...                                           early_stopping=lf.estimators.EarlyStopping("accuracy", 2))
        >>> result["evaluation"]["accuracy"]
    """
    if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
        raise EstimatorError(f"every_n_epochs={every_n_epochs!r} must be a positive whole number.")
    if isinstance(early_stopping, str):
        early_stopping = EarlyStopping(early_stopping)
    elif early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise EstimatorError("early_stopping= takes an lf.estimators.EarlyStopping, a metric name, or None.")
    if not hasattr(estimator, "train") or not hasattr(estimator, "evaluate"):
        raise EstimatorError(f"train_and_evaluate() takes an lf.estimators estimator; got {type(estimator).__name__}.")
    eval_dataset = as_dataset(eval_data)
    history: list[tuple[int, dict[str, float]]] = []
    state = {"stopped": False}

    def on_epoch_end(est: Any, epoch: int) -> tuple[dict[str, float] | None, bool]:
        if epoch % every_n_epochs:
            return None, False
        metrics = est.evaluate(eval_dataset)
        history.append((epoch, metrics))
        stop = early_stopping.update(metrics, epoch) if early_stopping is not None else False
        state["stopped"] = stop
        return {f"eval_{k.replace('/', '_')}": v for k, v in metrics.items() if k != "global_step"}, stop

    if epochs is None:
        epochs = getattr(estimator, "n_trees", 10)
    estimator.train(train_data, epochs=epochs, _on_epoch_end=on_epoch_end)
    if not history or history[-1][0] != estimator.epochs_done:
        metrics = estimator.evaluate(eval_dataset)
        history.append((estimator.epochs_done, metrics))
    return {
        "evaluation": history[-1][1],
        "history": history,
        "stopped_early": state["stopped"],
        "best_epoch": early_stopping.best_epoch if early_stopping is not None else None,
    }
