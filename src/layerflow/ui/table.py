"""The runs table of the UI: the index's rows kept in memory, filtered, sorted and paged per request."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from layerflow.runs.ls_runs import ls_runs, select_runs

TUNING_COLUMN = "prop_tuning_id"
TRIAL_COLUMN = "prop_trial"
VALUE_PREFIXES = ("flag_", "metric_", "eval_")


@dataclass
class Page:
    """One page of the runs table, as the template shows it."""

    rows: list[dict[str, Any]]
    columns: list[str]
    total: int
    page: int
    pages: int
    group_sizes: dict[str, int] = field(default_factory=dict)


class RunTable:
    """The table of a runs folder, read from its SQLite index and cached for ``max_age`` seconds.

    A request never waits on the index once the table was read once: an older copy is
    served while a background thread re-reads it, so sorting and filtering 10,000 runs
    costs one pandas query over memory, not a read of the index.

    Args:
        runs_dir: the runs folder (it must exist).
        max_age: seconds a copy of the table is served before it is re-read.

    Example:
        >>> table = RunTable(Path("runs"))
        >>> table.page(order="eval_accuracy", decreasing=True, filter="flag_dropout > 0.2").rows
    """

    def __init__(self, runs_dir: Path, max_age: float = 1.0):
        self.runs_dir = Path(runs_dir)
        self.max_age = max_age
        self._frame: pd.DataFrame | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()
        self._refreshing = threading.Event()

    def _read(self) -> None:
        try:
            frame = ls_runs(self.runs_dir)
            self._frame, self._read_at = frame, time.monotonic()
        finally:
            self._refreshing.clear()

    def frame(self) -> pd.DataFrame:
        """Every run, newest first (at most ``max_age`` seconds old, or being refreshed)."""
        with self._lock:
            if self._frame is None:
                self._refreshing.set()
                self._read()
            elif time.monotonic() - self._read_at > self.max_age and not self._refreshing.is_set():
                self._refreshing.set()
                threading.Thread(target=self._read, daemon=True, name="layerflow-ui-table").start()
            return self._frame

    def page(
        self,
        order: str | None = None,
        decreasing: bool = False,
        filter: str | None = None,
        page: int = 1,
        size: int = 50,
        group_tuning: bool = True,
    ) -> Page:
        """One page of the runs, filtered and sorted as ``layerflow runs --filter/--order`` does.

        Args:
            order: a column to sort by (default: newest first).
            decreasing: sort ``order`` from the largest value down.
            filter: a pandas query over the columns, e.g. ``"flag_units >= 128"``.
            page: the page number, from 1.
            size: runs per page.
            group_tuning: show the trials of a tuning run as one row (its first in this order).

        Returns:
            A ``Page``; ``ValueError`` (from ``select_runs``) names a bad filter or column.
        """
        selected = select_runs(self.frame(), order=order, decreasing=decreasing, filter=filter or None)
        group_sizes: dict[str, int] = {}
        if group_tuning and TUNING_COLUMN in selected.columns:
            tuning = selected[TUNING_COLUMN]
            group_sizes = tuning.dropna().astype(str).value_counts().to_dict()
            key = tuning.where(tuning.notna(), selected["id"]).astype(str)
            selected = selected[~key.duplicated()]
        total = len(selected)
        pages = max(1, math.ceil(total / size))
        page = min(max(1, page), pages)
        shown = selected.iloc[(page - 1) * size: page * size]
        columns = [c for c in ("id", "status", "script", "start", "epochs")]
        values = [c for c in selected.columns if c.startswith(VALUE_PREFIXES) and selected[c].notna().any()]
        if TUNING_COLUMN in selected.columns and selected[TUNING_COLUMN].notna().any():
            columns.append(TUNING_COLUMN)
        rows = [{k: _plain(v) for k, v in row.items()} for row in shown.to_dict("records")]
        return Page(rows=rows, columns=columns + values, total=total, page=page, pages=pages,
                    group_sizes=group_sizes)

    def tuning_trials(self, tuning_id: str) -> pd.DataFrame:
        """The trials of one tuning run (rows whose ``prop_tuning_id`` is ``tuning_id``), by trial number."""
        frame = self.frame()
        if TUNING_COLUMN not in frame.columns:
            return frame.iloc[0:0]
        trials = frame[frame[TUNING_COLUMN].astype(str) == tuning_id]
        if TRIAL_COLUMN in trials.columns:
            trials = trials.sort_values(TRIAL_COLUMN, kind="stable")
        return trials.dropna(axis=1, how="all").reset_index(drop=True)


def _plain(value: Any) -> Any:
    """A cell as the template shows it: missing values (NaN, None) as None."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        return value.item()
    return value
