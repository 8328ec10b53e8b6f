"""The table of runs: ``layerflow runs`` and ``lf.ls_runs``."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from layerflow.runs.store import RunStore

BASE_COLUMNS = ["id", "status", "script", "start", "end"]


def flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    """One table row: ``flag_*``, ``metric_*`` (last epoch), ``eval_*``, ``prop_*`` columns."""
    row = {column: record.get(column) for column in BASE_COLUMNS}
    for prefix, key in (("flag_", "flags"), ("metric_", "metrics"), ("eval_", "evaluation"), ("prop_", "properties")):
        values = record.get(key) or {}
        if isinstance(values, dict):
            row.update({f"{prefix}{name}": value for name, value in values.items()})
    row["epochs"] = record.get("epochs_completed")
    row["error"] = record.get("error")
    return row


def ls_runs(
    runs_dir: str | os.PathLike[str] | None = None,
    order: str | None = None,
    decreasing: bool = False,
    latest_n: int | None = None,
    filter: str | None = None,
) -> pd.DataFrame:
    """Lists runs as a DataFrame (newest first unless ``order`` is given).

    Columns: ``id, status, script, start, end, flag_<name>..., metric_<name>...`` (last
    epoch), ``eval_<name>...``, ``prop_<name>...``, ``epochs``, ``error``.

    Args:
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).
        order: a column to sort by, e.g. ``"eval_accuracy"`` (missing values last).
        decreasing: sort ``order`` from the largest value down.
        latest_n: keep only the N most recent runs (applied before sorting).
        filter: a pandas ``query`` expression, e.g. ``"flag_dropout > 0.2 and status == 'completed'"``.

    Example:
        >>> lf.ls_runs(order="eval_accuracy", decreasing=True).head()
    """
    if latest_n is not None and latest_n < 1:
        raise ValueError(f"latest_n={latest_n!r} must be a positive number of runs.")
    records = RunStore(runs_dir).records()
    frame = pd.DataFrame([flatten_record(r) for r in records])
    if frame.empty:
        frame = pd.DataFrame(columns=BASE_COLUMNS)
    frame = frame.sort_values("id", ascending=False, ignore_index=True)
    if latest_n is not None:
        frame = frame.head(latest_n)
    if filter:
        try:
            frame = frame.query(filter, engine="python")
        except Exception as error:  # noqa: BLE001 - pandas raises many kinds for a bad expression
            raise ValueError(
                f"Filter {filter!r} could not be applied ({type(error).__name__}: {error}); "
                f"columns are: {', '.join(frame.columns)}."
            ) from None
    if order is not None:
        if order not in frame.columns:
            raise ValueError(f"Cannot order by {order!r}: no such column. Columns are: {', '.join(frame.columns)}.")
        frame = frame.sort_values(order, ascending=not decreasing, na_position="last", kind="stable")
    return frame.reset_index(drop=True)
