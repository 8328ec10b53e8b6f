"""The one place where runs meet Keras: recording fit, evaluate and save inside a tracked run.

``install(keras)`` wraps ``keras.Model.fit``, ``evaluate`` and ``save`` so that a script
needs no change to be recorded: each epoch's metrics are appended to ``metrics.jsonl`` as
it ends, and the model's summary, optimizer, loss, evaluation and history plot are kept.
"""

from __future__ import annotations

import functools
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from layerflow.runs import files as f
from layerflow.runs.context import current_run_dir, update_json

_state = {"epochs": 0, "fits": 0, "fit_depth": 0}


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _describe_loss(loss: Any) -> Any:
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, dict):
        return {k: _describe_loss(v) for k, v in loss.items()}
    if isinstance(loss, (list, tuple)):
        return [_describe_loss(v) for v in loss]
    return getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__


def _compile_details(model: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"model_class": type(model).__name__, "model_name": getattr(model, "name", None)}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        config = optimizer.get_config()
        details["optimizer"] = {k: _plain(v) for k, v in config.items() if not isinstance(v, dict)}
    details["loss"] = _describe_loss(getattr(model, "loss", None))
    try:
        details["params"] = int(model.count_params())
    except ValueError:  # an unbuilt model
        pass
    return details


def make_recorder(keras: Any, run_dir: Path) -> Any:
    """A Keras callback appending each epoch's logs to the run's ``metrics.jsonl``."""

    class RunRecorder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            _state["fits"] += 1
            self._started = time.time()
            details = _compile_details(self.model)
            details.update({k: _plain(v) for k, v in self.params.items()})
            update_json(f.KERAS_FILE, details)
            from layerflow.summary import model_summary

            try:
                (run_dir / f.SUMMARY_FILE).write_text(model_summary(self.model))
            except ValueError:  # an unbuilt subclassed model has no summary yet
                pass

        def on_epoch_end(self, epoch, logs=None):
            _state["epochs"] += 1
            line = {"epoch": _state["epochs"], "time": round(time.time() - self._started, 4), "fit": _state["fits"]}
            line.update({k: _plain(v) for k, v in (logs or {}).items() if k not in f.EPOCH_KEYS})
            f.append_jsonl(run_dir / f.METRICS_FILE, line)

        def on_train_end(self, logs=None):
            try:
                save_history_plot(run_dir)
            except Exception as error:  # noqa: BLE001 - a plot must never break training
                warnings.warn(f"layerflow could not draw the history plot: {error}", stacklevel=2)

    return RunRecorder()


def make_evaluation_recorder(keras: Any) -> Any:
    """A Keras callback recording ``evaluate``'s final logs (every metric by name) in the run."""

    class EvaluationRecorder(keras.callbacks.Callback):
        def on_test_end(self, logs=None):
            update_json(f.EVALUATION_FILE, {k: _plain(v) for k, v in (logs or {}).items()})

    return EvaluationRecorder()


def save_history_plot(run_dir: Path) -> Path | None:
    """Draws every epoch recorded so far into ``plots/history.png``."""
    history = {name: [value for _, value in points] for name, points in f.read_metric_series(run_dir).items()}
    if not history or len({len(v) for v in history.values()}) != 1:
        return None
    from layerflow.plots import plot_history

    path = run_dir / f.PLOTS_DIR / "history.png"
    plot_history(history, path)
    return path


def install(keras: Any) -> None:
    """Wraps ``keras.Model`` methods so that the current tracked run records them."""
    model_class = keras.Model
    if getattr(model_class, "_layerflow_autolog", False):
        return
    original_fit, original_evaluate, original_save = model_class.fit, model_class.evaluate, model_class.save

    @functools.wraps(original_fit)
    def fit(self, *args, **kwargs):
        run_dir = current_run_dir()
        if run_dir is not None:
            callbacks = list(kwargs.get("callbacks") or [])
            callbacks.append(make_recorder(keras, run_dir))
            kwargs["callbacks"] = callbacks
        _state["fit_depth"] += 1
        try:
            return original_fit(self, *args, **kwargs)
        finally:
            _state["fit_depth"] -= 1

    @functools.wraps(original_evaluate)
    def evaluate(self, *args, **kwargs):
        if current_run_dir() is not None and _state["fit_depth"] == 0:  # not fit's validation
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), make_evaluation_recorder(keras)]
        return original_evaluate(self, *args, **kwargs)

    @functools.wraps(original_save)
    def save(self, filepath, *args, **kwargs):
        result = original_save(self, filepath, *args, **kwargs)
        run_dir = current_run_dir()
        source = Path(str(filepath))
        if run_dir is not None and source.is_file():
            target = run_dir / f.MODEL_DIR / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.resolve() != target.resolve():
                shutil.copy2(source, target)
            update_json(f.KERAS_FILE, {"saved_model": f"{f.MODEL_DIR}/{source.name}"})
        return result

    model_class.fit, model_class.evaluate, model_class.save = fit, evaluate, save
    model_class._layerflow_autolog = True
