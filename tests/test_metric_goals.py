"""One owner decides which way a metric improves (tuning, early stopping and the UI ask it)."""

from __future__ import annotations

import pytest

from layerflow.runs.metric_goals import default_metric, metric_column, metric_mode


@pytest.mark.parametrize(
    "name",
    ["loss", "val_loss", "metric_val_mae", "eval_rmse", "mse", "val_error", "binary_crossentropy", "kl_divergence"],
)
def test_losses_and_errors_are_minimised(name):
    assert metric_mode(name) == "min"


@pytest.mark.parametrize("name", ["accuracy", "metric_val_accuracy", "eval_auc", "precision", "r2"])
def test_scores_are_maximised(name):
    assert metric_mode(name) == "max"


def test_default_metric_prefers_evaluation_then_validation():
    assert default_metric(["metric_loss", "metric_val_accuracy", "eval_accuracy"]) == ("eval_accuracy", "max")
    assert default_metric(["metric_loss"]) == ("metric_loss", "min")
    assert default_metric(["metric_custom"]) is None


def test_metric_column_adds_the_runs_table_prefix_once():
    assert metric_column("val_loss") == "metric_val_loss"
    assert metric_column("eval_accuracy") == "eval_accuracy"
    assert metric_column("metric_mae") == "metric_mae"
