"""What an estimator records inside a tracked run (``layerflow run``); nothing outside one."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from layerflow.runs import current_run_dir, log_metrics
from layerflow.runs.context import RUN_DIR_ENV, update_json
from layerflow.runs.files import EVALUATION_FILE, MODEL_DIR

# The trained estimator of a run goes here (beside any Keras model the script saves).
RUN_ESTIMATOR_DIR = "estimator"


def record_epoch(epoch: int, metrics: dict[str, float]) -> None:
    """Appends one epoch's (boosting round's) metrics to the run's ``metrics.jsonl``."""
    if current_run_dir() is None:
        return
    log_metrics(epoch, **{k.replace("/", "_"): v for k, v in metrics.items() if _finite(v)})


def record_evaluation(metrics: dict[str, float]) -> None:
    """Stores ``evaluate``'s metrics as the run's evaluation (the eval_* columns)."""
    if current_run_dir() is None:
        return
    update_json(EVALUATION_FILE, {k.replace("/", "_"): v for k, v in metrics.items()})


def run_environment() -> dict[str, str]:
    """The environment variables that make another process (a Ray Train worker) record into this run."""
    run_dir = current_run_dir()
    return {} if run_dir is None else {RUN_DIR_ENV: str(run_dir)}


def run_model_dir() -> Path | None:
    """Where the run keeps its trained estimator, or None outside a tracked run."""
    run_dir = current_run_dir()
    return None if run_dir is None else run_dir / MODEL_DIR / RUN_ESTIMATOR_DIR


def save_to_run(estimator: Any) -> Path | None:
    """Saves the trained estimator into the run's ``model/estimator`` folder (replacing an older one)."""
    target = run_model_dir()
    if target is None:
        return None
    staging = target.with_name(f".{target.name}.saving")
    shutil.rmtree(staging, ignore_errors=True)
    estimator.save(staging)
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
