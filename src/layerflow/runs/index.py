"""The SQLite index of a runs folder: a cache of every run's record, rebuildable at any time."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

from layerflow.runs import files as f
from layerflow.runs.ids import looks_like_run_id
from layerflow.runs.record import FINISHED_STATUSES, flatten_record, read_record

INDEX_FILE = "index.sqlite"
SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    start TEXT,
    status TEXT,
    stamp TEXT NOT NULL,
    record TEXT NOT NULL,
    row TEXT NOT NULL
)
"""


def _stamp(run_dir: str | Path) -> str:
    """Changes whenever run.json is rewritten (the driver replaces it when a run ends).

    Runs still in progress are re-read on every listing whatever their stamp; a finished
    run's other files are final, and `rebuild` re-reads everything after a hand edit.
    """
    try:
        stat = os.stat(os.path.join(run_dir, f.RUN_FILE))
    except FileNotFoundError:
        return "-"
    return f"{stat.st_mtime_ns}.{stat.st_size}"


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switches to the WAL journal; SQLite answers "locked" without waiting when two
    connections do it at once on a new file, so that case is retried."""
    for attempt in range(200):
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == 199:
                raise
            time.sleep(0.05)


class RunIndex:
    """Reads and refreshes ``index.sqlite`` under a runs folder.

    Safe for several processes at once (WAL journal, waits on locks). Records are
    refreshed from the folders whenever a run's ``run.json`` changed or the run is
    still in progress, so the index never serves a stale row.
    """

    def __init__(self, runs_dir: Path):
        self.runs_dir = Path(runs_dir)
        self.path = self.runs_dir / INDEX_FILE

    def _connect(self) -> sqlite3.Connection:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        _use_wal(connection)
        connection.execute("PRAGMA synchronous=NORMAL")
        if connection.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            # An index from another layerflow version: it is only a cache, so start it afresh.
            connection.execute("DROP TABLE IF EXISTS runs")
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute(_SCHEMA)
        return connection

    def run_dirs(self) -> dict[str, Path]:
        """Every run folder directly under the runs folder, by id."""
        return {run_id: Path(path) for run_id, path in self._run_paths().items()}

    def _run_paths(self) -> dict[str, str]:
        if not self.runs_dir.is_dir():
            return {}
        with os.scandir(self.runs_dir) as entries:
            return {e.name: e.path for e in entries if looks_like_run_id(e.name) and e.is_dir()}

    def update(self, run_dirs: Iterable[Path]) -> None:
        """Re-reads the given run folders into the index."""
        rows = []
        for run_dir in run_dirs:
            record = read_record(run_dir)
            rows.append(
                (
                    record["id"],
                    record.get("start"),
                    record.get("status"),
                    _stamp(run_dir),
                    json.dumps(record, default=str),
                    json.dumps(flatten_record(record), default=str),
                )
            )
        if not rows:
            return
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")

    def refresh(self) -> None:
        """Re-reads every run folder that is new, changed or still running; drops vanished ones."""
        paths = self._run_paths()
        with closing(self._connect()) as db:
            indexed = {row[0]: (row[1], row[2]) for row in db.execute("SELECT id, stamp, status FROM runs")}
        stale = [
            Path(path)
            for run_id, path in paths.items()
            if run_id not in indexed
            or indexed[run_id][1] not in FINISHED_STATUSES
            or indexed[run_id][0] != _stamp(path)
        ]
        gone = [run_id for run_id in indexed if run_id not in paths]
        self.update(stale)
        if gone:
            with closing(self._connect()) as db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("DELETE FROM runs WHERE id = ?", [(run_id,) for run_id in gone])
                db.execute("COMMIT")

    def _select(self, column: str) -> list[dict[str, Any]]:
        self.refresh()
        with closing(self._connect()) as db:
            # One JSON array built by SQLite parses much faster than one json.loads per run.
            (array,) = db.execute(
                f"SELECT '[' || coalesce(group_concat({column}, ','), '') || ']' "
                f"FROM (SELECT {column} FROM runs ORDER BY id)"
            ).fetchone()
        return json.loads(array)

    def records(self) -> list[dict[str, Any]]:
        """All run records, oldest first, refreshed from any folder that changed."""
        return self._select("record")

    def rows(self) -> list[dict[str, Any]]:
        """All runs as flat table rows (see ``flatten_record``), oldest first."""
        return self._select("row")

    def rebuild(self) -> int:
        """Drops the index and rebuilds it from the run folders; returns the number of runs."""
        with closing(self._connect()) as db:
            db.execute("DELETE FROM runs")
        dirs = self.run_dirs()
        self.update(dirs.values())
        return len(dirs)
