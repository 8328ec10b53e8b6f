"""The runs table of the UI: filtered, sorted, grouped and paged in SQLite.

A page of 10,000 runs costs one SQL query over a mirror of the index's rows, not a
DataFrame of every run; the memory of the server stays small as the store grows. Filters that SQL cannot
express as pandas would (see ``layerflow.ui.query``) are evaluated with ``ls_runs``'s own
pandas query, so the table takes every ``layerflow runs --filter`` expression.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layerflow.errors import InvalidValueError, MissingDependencyError
from layerflow.runs.index import INDEX_FILE, RunIndex
from layerflow.runs.record import BASE_COLUMNS, FINISHED_STATUSES
from layerflow.ui.query import UnknownColumn, Untranslatable, column_sql, filter_to_sql

TUNING_COLUMN = "prop_tuning_id"
TRIAL_COLUMN = "prop_trial"
VALUE_PREFIXES = ("flag_", "metric_", "eval_")
SHOWN_BASE = ("id", "status", "script", "start", "epochs")
FULL_REFRESH_SECONDS = 60.0
RUN_DIR_COLUMN = "run_dir"
# The columns every `layerflow runs` table has, runs or not (besides id); flag_*, metric_* ... come with the runs.
FIXED_COLUMNS = [*(c for c in BASE_COLUMNS if c != "id"), "epochs", "error", RUN_DIR_COLUMN]


class TableError(InvalidValueError):
    """A filter or sort column the runs table cannot apply (the message says why)."""


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
    """The table of a runs folder: the index's flat rows mirrored into an in-memory SQLite table.

    Each column of ``layerflow runs`` (``flag_*``, ``metric_*``, ``eval_*``, ``prop_*`` ...) is a
    column of the mirror, so filtering, sorting and paging 10,000 runs is one SQL query over
    plain values. The index is brought up to date from the run folders (new, changed and
    running runs re-read) at most every ``max_age`` seconds, in a background thread once the
    table was read once, and only the rows that changed are copied into the mirror.

    Args:
        runs_dir: the runs folder (it must exist).
        max_age: seconds between refreshes of the index from the run folders.

    Example:
        >>> table = RunTable(Path("runs"))
        >>> table.page(order="eval_accuracy", decreasing=True, filter="flag_dropout > 0.2").rows
    """

    def __init__(self, runs_dir: Path, max_age: float = 2.0):
        self.runs_dir = Path(runs_dir)
        self._folder = self.runs_dir.absolute()  # run_dir values, as ls_runs gives them
        self.max_age = max_age
        self._index = RunIndex(self.runs_dir)
        self._refreshed_at: float | None = None
        self._refreshing = False
        self._lock = threading.Lock()  # guards the mirror connection
        self._mirror = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        fixed = ", ".join(column_sql(c) for c in FIXED_COLUMNS)
        self._mirror.execute(f"CREATE TABLE runs (id TEXT PRIMARY KEY, _stamp TEXT, _row TEXT, {fixed})")
        self._columns: list[str] = list(FIXED_COLUMNS)  # every column but id
        self._stamps: dict[str, str] = {}
        self._folder_mtime: int | None = None
        self._full_at = 0.0

    def _refresh(self) -> None:
        """Brings the mirror up to date: only the runs in progress, unless run folders came or went.

        A new or removed run folder changes the runs folder's mtime; a finished run's files do
        not change (a hand edit is picked up by the full pass every ``FULL_REFRESH_SECONDS``).
        """
        try:
            folder_mtime = os.stat(self.runs_dir).st_mtime_ns
            now = time.monotonic()
            if folder_mtime != self._folder_mtime or now - self._full_at > FULL_REFRESH_SECONDS:
                self._index.refresh()
                self._folder_mtime, self._full_at = folder_mtime, now
                with closing(self._read_index()) as db:
                    stamps = {
                        i: f"{stamp}/{status}" for i, stamp, status in db.execute("SELECT id, stamp, status FROM runs")
                    }
            else:
                running = [i for i, stamp in self._stamps.items() if not stamp.endswith(FINISHED_STATUSES)]
                self._index.update([self.runs_dir / i for i in running if (self.runs_dir / i).is_dir()])
                stamps = dict(self._stamps)
                if running:
                    with closing(self._read_index()) as db:
                        marks = ",".join("?" * len(running))
                        stamps.update(
                            {
                                i: f"{stamp}/{status}"
                                for i, stamp, status in db.execute(
                                    f"SELECT id, stamp, status FROM runs WHERE id IN ({marks})", running
                                )
                            }
                        )
            changed = [
                i
                for i, stamp in stamps.items()
                if self._stamps.get(i) != stamp or not stamp.endswith(FINISHED_STATUSES)
            ]
            rows = []
            with closing(self._read_index()) as db:
                for chunk in range(0, len(changed), 500):
                    ids = changed[chunk : chunk + 500]
                    rows += db.execute(
                        f"SELECT id, row FROM runs WHERE id IN ({','.join('?' * len(ids))})", ids
                    ).fetchall()
            self._apply(stamps, rows)
            self._refreshed_at = time.monotonic()
        finally:
            self._refreshing = False

    def _read_index(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.runs_dir / INDEX_FILE}?mode=ro", uri=True, timeout=30)

    def __len__(self) -> int:
        self.fresh()
        return len(self._stamps)

    def _apply(self, stamps: dict[str, str], rows: list[tuple[str, str]]) -> None:
        parsed = []
        for run_id, text in rows:
            row = json.loads(text)
            row[RUN_DIR_COLUMN] = str(self._folder / run_id)  # a column of `layerflow runs`, not of the index
            parsed.append((run_id, json.dumps(row), row))
        new_columns = list(
            dict.fromkeys(k for _, _, row in parsed for k in row if k != "id" and k not in self._columns)
        )
        gone = [i for i in self._stamps if i not in stamps]
        with self._lock:
            db = self._mirror
            db.execute("BEGIN")
            for column in new_columns:
                db.execute(f"ALTER TABLE runs ADD COLUMN {column_sql(column)}")
            columns = self._columns + new_columns
            names = ", ".join(["id", "_stamp", "_row", *(column_sql(c) for c in columns)])
            marks = ", ".join("?" * (len(columns) + 3))
            if parsed:
                db.executemany(
                    f"INSERT OR REPLACE INTO runs ({names}) VALUES ({marks})",
                    [(i, stamps[i], text, *(_sql_value(row.get(c)) for c in columns)) for i, text, row in parsed],
                )
            db.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in gone])
            db.execute("COMMIT")
            self._columns = columns
        self._stamps = stamps

    def fresh(self) -> None:
        """Makes sure the table was read once; starts a background refresh when it is older than ``max_age``."""
        start = False
        with self._lock:
            if self._refreshed_at is None and not self._refreshing:
                self._refreshing = True
                first = True
            else:
                first = False
                refreshed_at = self._refreshed_at
                if not self._refreshing and refreshed_at is not None and time.monotonic() - refreshed_at > self.max_age:
                    self._refreshing = start = True
        if first:
            self._refresh()
        elif start:
            threading.Thread(target=self._refresh, daemon=True, name="layerflow-ui-index").start()
        while self._refreshed_at is None and self._refreshing:  # another request is reading the table the first time
            time.sleep(0.01)

    def _query(self, sql: str, params: list[Any]) -> list[tuple]:
        with self._lock:
            return self._mirror.execute(sql, params).fetchall()

    @property
    def columns(self) -> list[str]:
        """The columns of ``layerflow runs``: ``id``, ``status``, ..., ``run_dir`` and each ``flag_*``, ``metric_*``,
        ``eval_*``, ``prop_*`` some run has."""
        self.fresh()
        return ["id", *self._columns]

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
            order: a column to sort by, missing values last (default: newest first).
            decreasing: sort ``order`` from the largest value down.
            filter: a pandas query over the columns, e.g. ``"flag_units >= 128"``.
            page: the page number, from 1 (clamped to the pages there are).
            size: runs per page.
            group_tuning: show the trials of a tuning run as one row (its first in this order).

        Returns:
            A ``Page``.

        Raises:
            TableError: a filter that cannot be applied or an unknown ``order`` column.
        """
        columns = set(self.columns)
        if order is not None and order not in columns:
            raise TableError(f"Cannot order by {order!r}: no such column. Columns are: {', '.join(sorted(columns))}.")
        where = "1"
        params: list[Any] = []
        if filter:
            try:
                where, params = filter_to_sql(filter, columns)
            except UnknownColumn as error:
                raise TableError(f"Filter {filter!r} could not be applied: {error}") from None
            except Untranslatable:
                return self._page_with_pandas(order, decreasing, filter, page, size, group_tuning)
            except SyntaxError as error:
                raise TableError(
                    f"Filter {filter!r} is not an expression ({error.msg}); e.g. flag_dropout > 0.2."
                ) from None
        value = column_sql(order) if order else "id"
        direction = "DESC" if decreasing or order is None else "ASC"
        group = f"coalesce({column_sql(TUNING_COLUMN)}, id)" if group_tuning and TUNING_COLUMN in columns else "id"
        selected = f"SELECT id, {value} AS o, {group} AS g FROM runs WHERE {where}"
        try:
            (total,) = self._query(f"SELECT count(DISTINCT g) FROM ({selected})", params)[0]
            pages = max(1, math.ceil(total / size))
            page = min(max(1, page), pages)
            if group == "id":
                found = self._query(
                    f"SELECT id, 1 FROM ({selected}) ORDER BY (o IS NULL), o {direction}, id DESC LIMIT ? OFFSET ?",
                    [*params, size, (page - 1) * size],
                )
            else:
                found = self._query(
                    f"SELECT id, n FROM (SELECT o, id, count(*) OVER (PARTITION BY g) AS n, "
                    f"row_number() OVER (PARTITION BY g ORDER BY (o IS NULL), o {direction}, id DESC) AS rank "
                    f"FROM ({selected})) WHERE rank = 1 ORDER BY (o IS NULL), o {direction}, id DESC LIMIT ? OFFSET ?",
                    [*params, size, (page - 1) * size],
                )
        except sqlite3.OperationalError as error:
            raise TableError(f"Filter {filter!r} could not be applied ({error}).") from None
        ids = [run_id for run_id, _ in found]
        by_id = dict(self._query(f"SELECT id, _row FROM runs WHERE id IN ({','.join('?' * len(ids))})", ids))
        rows = [json.loads(by_id[run_id]) for run_id in ids]
        sizes = {str(r.get(TUNING_COLUMN)): n for r, (_, n) in zip(rows, found) if r.get(TUNING_COLUMN) is not None}
        return Page(
            rows=rows,
            columns=self._shown(rows),
            total=total,
            page=page,
            pages=pages,
            group_sizes=sizes if group_tuning else {},
        )

    def _page_with_pandas(self, order, decreasing, filter, page, size, group_tuning) -> Page:
        from layerflow.runs.ls_runs import ls_runs, select_runs

        try:
            frame = select_runs(ls_runs(self.runs_dir), order=order, decreasing=decreasing, filter=filter)
        except ValueError as error:
            raise TableError(str(error)) from None
        except MissingDependencyError as error:
            raise TableError(f"Filter {filter!r} needs pandas (SQL cannot express it): {error}") from None
        records = json.loads(frame.to_json(orient="records"))
        sizes: dict[str, int] = {}
        if group_tuning:
            kept, seen = [], set()
            for record in records:
                tuning = record.get(TUNING_COLUMN)
                if tuning is not None:
                    sizes[str(tuning)] = sizes.get(str(tuning), 0) + 1
                    if tuning in seen:
                        continue
                    seen.add(tuning)
                kept.append(record)
            records = kept
        pages = max(1, math.ceil(len(records) / size))
        page = min(max(1, page), pages)
        rows = records[(page - 1) * size : page * size]
        return Page(rows=rows, columns=self._shown(rows), total=len(records), page=page, pages=pages, group_sizes=sizes)

    def _shown(self, rows: list[dict[str, Any]]) -> list[str]:
        values = [c for c in self._columns if c.startswith(VALUE_PREFIXES) and any(r.get(c) is not None for r in rows)]
        tuning = [TUNING_COLUMN] if any(r.get(TUNING_COLUMN) is not None for r in rows) else []
        return [*SHOWN_BASE, *tuning, *sorted(values, key=lambda c: (VALUE_PREFIXES.index(c[: c.index("_") + 1]), c))]

    def tuning_trials(self, tuning_id: str) -> list[dict[str, Any]]:
        """The rows of one tuning run's trials (``prop_tuning_id == tuning_id``), by trial number."""
        if TUNING_COLUMN not in self.columns:
            return []
        trial_order = column_sql(TRIAL_COLUMN) + ", " if TRIAL_COLUMN in self._columns else ""
        found = self._query(
            f"SELECT _row FROM runs WHERE {column_sql(TUNING_COLUMN)} = ? ORDER BY {trial_order}id", [tuning_id]
        )
        return [json.loads(row) for (row,) in found]


def _sql_value(value: Any) -> Any:
    """A cell as SQLite stores it: numbers, text and NULL as they are; lists and dicts as JSON text."""
    if value is None or isinstance(value, (int, float, str)):
        return value
    return json.dumps(value, default=str)
