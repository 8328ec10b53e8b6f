"""The table of runs: ``layerflow runs`` and ``lf.ls_runs``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from layerflow.errors import InvalidValueError, training_stack
from layerflow.runs.record import BASE_COLUMNS
from layerflow.runs.store import RunStore


@training_stack("lf.ls_runs")
def ls_runs(
    runs_dir: str | os.PathLike[str] | None = None,
    order: str | None = None,
    decreasing: bool = False,
    latest_n: int | None = None,
    filter: str | None = None,
    reindex: bool = False,
) -> pd.DataFrame:
    """Lists runs as a DataFrame (newest first unless ``order`` is given).

    Columns: ``id, status, script, start, end, flag_<name>..., metric_<name>...`` (last
    epoch), ``eval_<name>...``, ``prop_<name>...``, ``epochs``, ``error``, ``run_dir`` (the
    run's folder).

    Args:
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).
        order: a column to sort by, e.g. ``"eval_accuracy"`` (missing values last).
        decreasing: sort ``order`` from the largest value down.
        latest_n: keep only the N most recent runs (applied before sorting).
        filter: a pandas ``query`` expression, e.g. ``"flag_dropout > 0.2 and status == 'completed'"``.
        reindex: rebuild ``index.sqlite`` from the run folders first (after editing them by hand).

    Returns:
        A pandas DataFrame, one row per run; ``attrs["runs_dir"]`` is the runs folder (and with
        ``reindex``, ``attrs["reindexed"]`` the number of runs the index was rebuilt from).

    Raises:
        InvalidValueError: an unknown ``order`` column, a bad ``filter`` or ``latest_n``.
        MissingDependencyError: pandas is not installed (a serving-only install), naming
            ``pip install 'layerflow[train]'``.

    Example:
        >>> lf.ls_runs(order="eval_accuracy", decreasing=True).head()
    """
    if latest_n is not None and latest_n < 1:
        raise InvalidValueError(f"latest_n={latest_n!r} must be a positive number of runs.")
    import pandas as pd  # before the store is touched: a serving-only install lacks it

    store = RunStore(runs_dir)
    reindexed = store.index.rebuild() if reindex else None
    frame = pd.DataFrame(store.index.rows())
    if frame.empty:
        frame = pd.DataFrame(columns=[*BASE_COLUMNS, "run_dir"])
    else:
        frame["run_dir"] = [str(store.path / run_id) for run_id in frame["id"]]
    frame = frame.sort_values("id", ascending=False, ignore_index=True)
    if latest_n is not None:
        frame = frame.head(latest_n)
    frame = select_runs(frame, order=order, decreasing=decreasing, filter=filter)
    frame.attrs["runs_dir"] = str(store.path)
    if reindexed is not None:
        frame.attrs["reindexed"] = reindexed
    return frame


def select_runs(
    frame: pd.DataFrame, order: str | None = None, decreasing: bool = False, filter: str | None = None
) -> pd.DataFrame:
    """Filters and sorts a table of runs as ``ls_runs`` does (its ``filter`` and ``order``).

    Args:
        frame: a table of runs, as ``ls_runs`` returns it.
        order: a column to sort by (missing values last).
        decreasing: sort ``order`` from the largest value down.
        filter: a pandas ``query`` expression over the columns.

    Returns:
        The selected rows, renumbered from 0.

    Raises:
        InvalidValueError: an unknown ``order`` column or a bad ``filter``.

    Example:
        >>> select_runs(lf.ls_runs(), order="eval_accuracy", filter="status == 'completed'")
    """
    if filter:
        try:
            frame = frame.query(filter, engine="python")
        except Exception as error:  # noqa: BLE001 - pandas raises many kinds for a bad expression
            raise InvalidValueError(
                f"Filter {filter!r} could not be applied ({type(error).__name__}: {error}); "
                f"columns are: {', '.join(frame.columns)}."
            ) from None
    if order is not None:
        if order not in frame.columns:
            raise InvalidValueError(
                f"Cannot order by {order!r}: no such column. Columns are: {', '.join(frame.columns)}."
            )
        frame = frame.sort_values(order, ascending=not decreasing, na_position="last", kind="stable")
    return frame.reset_index(drop=True)
