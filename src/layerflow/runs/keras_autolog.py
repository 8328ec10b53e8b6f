"""The one place where runs meet Keras: recording fit, evaluate and save inside a tracked run.

A script needs no change to be recorded: in a tracked run's process (``layerflow run``,
``lf.training_run``; ``runs/launch.py`` calls ``install`` when the script imports Keras),
every ``keras.callbacks.CallbackList`` that Keras's ``fit``/``evaluate``/``predict`` make for a
model gets one more callback, the run's ``RunRecorder``, through Keras's public callback
interface: each epoch's metrics are appended to ``metrics.jsonl`` as it ends, and the model's
summary, optimizer, loss, evaluation (a top-level ``evaluate``, not ``fit``'s validation) and
history plot are kept. A model's ``save`` is an event outside any loop, which no callback
hears, so in a tracked run's process ``keras.Model.save`` also copies the file it wrote into
the run's ``model/`` (a model saved without being trained there, e.g. one loaded and saved, is
recorded too). Outside a tracked run nothing is installed.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from layerflow.runs import files as f
from layerflow.runs.context import current_run_dir, update_json

_state = {"epochs": 0, "fits": 0}


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
    """The run's Keras callback: epochs into ``metrics.jsonl``, a top-level ``evaluate``'s logs,
    and the files the model saves.

    Args:
        keras: the imported ``keras`` module.
        run_dir: the tracked run's folder.

    Returns:
        A ``keras.callbacks.Callback``.

    Example:
        >>> model.fit(x, y, callbacks=[make_recorder(keras, run_dir)])
    """

    class RunRecorder(keras.callbacks.Callback):
        _layerflow_run_recorder = True

        def __init__(self):
            super().__init__()
            self._training = False

        def on_train_begin(self, logs=None):
            self._training = True
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
            self._training = False
            try:
                save_history_plot(run_dir)
            except Exception as error:  # noqa: BLE001 - a plot must never break training
                warnings.warn(f"layerflow could not draw the history plot: {error}", stacklevel=2)

        def on_test_end(self, logs=None):
            if not self._training:  # fit's validation runs inside fit, with fit's callbacks
                update_json(f.EVALUATION_FILE, {k: _plain(v) for k, v in (logs or {}).items()})

    return RunRecorder()


def _copy_saved(filepath: Any) -> None:
    """Copies a file the model saved into the current run's ``model/`` and names it in keras.json."""
    run_dir = current_run_dir()
    source = Path(str(filepath))
    if run_dir is not None and source.is_file():
        target = run_dir / f.MODEL_DIR / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.resolve() != target.resolve():
            shutil.copy2(source, target)
        update_json(f.KERAS_FILE, {"saved_model": f"{f.MODEL_DIR}/{source.name}"})


def _record_saves(keras: Any) -> None:
    model_class = keras.Model
    original_save = model_class.save
    if getattr(original_save, "_layerflow_recording", False):
        return

    def save(self: Any, filepath: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_save(self, filepath, *args, **kwargs)
        _copy_saved(filepath)
        return result

    _mark_recording(save, original_save)
    save.__doc__ = original_save.__doc__
    model_class.save = save


def save_history_plot(run_dir: Path) -> Path | None:
    """Draws every epoch recorded so far into ``plots/history.png``."""
    history = {name: [value for _, value in points] for name, points in f.read_metric_series(run_dir).items()}
    if not history or len({len(v) for v in history.values()}) != 1:
        return None
    from layerflow.plots import plot_history

    path = run_dir / f.PLOTS_DIR / "history.png"
    plot_history(history, path)
    return path


def _mark_recording(patched: Any, original: Any) -> None:
    """Marks a patched Keras function (``CallbackList.__init__``, ``Model.save``): a ``def`` has no
    declared attributes for mypy; ``install`` reads ``_layerflow_recording`` back with getattr."""
    patched._layerflow_recording = True
    patched.__wrapped__ = original


def install(keras: Any) -> None:
    """Adds the run's recorder to the callbacks of every loop Keras runs in this process (idempotent).

    Called only in a tracked run's process (the user asked for the recording): the
    ``keras.callbacks.CallbackList`` Keras makes for a model's ``fit``/``evaluate``/``predict``
    gets one ``RunRecorder`` after the user's callbacks, while the process is in a run. A
    ``CallbackList`` the caller made (``fit(callbacks=CallbackList(...))``) or one made without
    a model is left as it is.

    Args:
        keras: the imported ``keras`` module.

    Returns:
        None.

    Example:
        >>> install(keras)   # runs/launch.py does this when the script imports keras
    """
    callback_list = keras.callbacks.CallbackList
    if getattr(callback_list.__init__, "_layerflow_recording", False):
        return
    original_init = callback_list.__init__

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        run_dir = current_run_dir()
        if run_dir is not None and model is not None:
            listed = keras.tree.flatten(callbacks) if callbacks else []
            if not any(getattr(c, "_layerflow_run_recorder", False) for c in listed):
                callbacks = [*listed, make_recorder(keras, run_dir)]
        original_init(self, callbacks, add_history=add_history, add_progbar=add_progbar, model=model, **params)

    _mark_recording(__init__, original_init)
    callback_list.__init__ = __init__
    _record_saves(keras)
