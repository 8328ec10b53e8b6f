"""The running script's side of a tracked run: what it adds to its own run folder."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from layerflow.errors import InvalidTypeError, InvalidValueError
from layerflow.runs import files as f

RUN_DIR_ENV = "LAYERFLOW_RUN_DIR"

_warned_untracked = False


def current_run_dir() -> Path | None:
    """The folder of the tracked run this process belongs to, or None outside one."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def is_tracked() -> bool:
    """True inside a script started by ``layerflow run`` / ``lf.training_run``."""
    return current_run_dir() is not None


def _run_dir_or_warn(what: str) -> Path | None:
    global _warned_untracked
    run_dir = current_run_dir()
    if run_dir is None and not _warned_untracked:
        warnings.warn(
            f"{what}: this script is not running as a tracked run, so nothing is recorded. "
            "Start it with `layerflow run SCRIPT` or lf.training_run(SCRIPT).",
            stacklevel=3,
        )
        _warned_untracked = True
    return run_dir


def record_flags(flags: Any) -> None:
    """Records resolved flags (a ``Flags`` object) in the current run, if any."""
    run_dir = current_run_dir()
    if run_dir is not None:
        f.write_json(run_dir / f.FLAGS_FILE, flags.as_record())


def update_json(name: str, values: dict[str, Any]) -> None:
    """Merges ``values`` into the JSON object file ``name`` of the current run."""
    run_dir = current_run_dir()
    if run_dir is None:
        return
    path = run_dir / name
    current = f.read_json(path, {}) or {}
    current.update(values)
    f.write_json(path, current)


def run_properties(**properties: Any) -> None:
    """Adds custom properties (JSON-serialisable values) to the current run's record.

    Outside a tracked run it warns once and records nothing.

    Args:
        **properties: ``name=value`` pairs; they show as ``prop_<name>`` columns in ``ls_runs``.

    Returns:
        None.

    Raises:
        InvalidTypeError: a value that is not JSON-serialisable.

    Example:
        >>> lf.run_properties(dataset="fashion-mnist", notes="baseline")
    """
    for name, value in properties.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise InvalidTypeError(
                f"Run property {name!r} holds a {type(value).__name__}, which is not JSON-serialisable; "
                "use numbers, strings, booleans, lists or dicts (or lf.write_run_data for other objects)."
            ) from None
    if _run_dir_or_warn("lf.run_properties") is not None:
        update_json(f.PROPERTIES_FILE, properties)


_logged_epochs = 0


def log_metrics(epoch: int | None = None, **metrics: float) -> None:
    """Appends one epoch's metrics to the current run's ``metrics.jsonl``.

    Keras training is recorded without it; use it for any other training loop (plain
    torch, scikit-learn, ...), so that listing, comparing and the tuner's early stopping
    see its metrics. ``epoch`` counts from 1 and defaults to the previous one plus one.

    Args:
        epoch: the epoch number (from 1); default the previous one plus one.
        **metrics: ``name=value`` numbers, e.g. ``loss=0.3, val_accuracy=0.9``.

    Returns:
        None.

    Raises:
        InvalidTypeError: a metric that is not a number.
        InvalidValueError: an epoch that is not a whole number from 1.

    Example:
        >>> for epoch in range(1, 11):
        ...     lf.log_metrics(epoch, loss=train_loss, val_accuracy=accuracy)
    """
    global _logged_epochs
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "item"):
            raise InvalidTypeError(f"Metric {name!r} is a {type(value).__name__}; expected a number.")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1):
        raise InvalidValueError(f"epoch must be a whole number from 1; got {epoch!r}.")
    _logged_epochs = epoch if epoch is not None else _logged_epochs + 1
    run_dir = _run_dir_or_warn("lf.log_metrics")
    if run_dir is not None:
        values = {name: float(value) for name, value in metrics.items()}
        f.append_jsonl(run_dir / f.METRICS_FILE, {"epoch": _logged_epochs, **values})


def write_run_data(name: str, obj: Any) -> Path | None:
    """Stores an object in the current run's ``data/`` folder and returns the file written.

    The format follows the object: ``str`` -> text, ``bytes`` -> binary, a pandas
    DataFrame -> CSV, a matplotlib Figure -> PNG (in ``plots/``), a numpy array -> .npy,
    anything JSON-serialisable -> JSON. ``name`` is the file name (a suffix is added
    when it has none).

    Args:
        name: a plain file name, e.g. ``"predictions.csv"``.
        obj: the object to store.

    Returns:
        The path written, or None outside a tracked run.

    Example:
        >>> lf.write_run_data("confusion.csv", confusion_frame)
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise InvalidValueError(f"Run data name {name!r} must be a plain file name such as 'predictions.csv'.")
    run_dir = _run_dir_or_warn("lf.write_run_data")
    if run_dir is None:
        return None
    path = run_dir / f.DATA_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(obj, str):
        path.write_text(obj)
    elif isinstance(obj, (bytes, bytearray)):
        path.write_bytes(obj)
    elif type(obj).__name__ == "DataFrame":
        path = path if path.suffix else path.with_suffix(".csv")
        obj.to_csv(path, index=False)
    elif hasattr(obj, "savefig"):
        path = run_dir / f.PLOTS_DIR / name
        path = path if path.suffix else path.with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        obj.savefig(path)
    elif type(obj).__module__ == "numpy" and hasattr(obj, "shape"):
        import numpy as np

        path = path if path.suffix == ".npy" else path.with_name(path.name + ".npy")
        np.save(path, obj)
    else:
        try:
            text = json.dumps(obj, indent=2)
        except (TypeError, ValueError):
            raise InvalidTypeError(
                f"Cannot store a {type(obj).__name__} as run data {name!r}; expected str, bytes, "
                "a DataFrame, a matplotlib Figure, a numpy array or a JSON-serialisable value."
            ) from None
        path = path if path.suffix else path.with_suffix(".json")
        path.write_text(text + "\n")
    return path
