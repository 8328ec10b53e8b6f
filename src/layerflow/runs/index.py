"""The SQLite index of a runs folder: a cache of every run's record, rebuildable at any time."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Iterable

from layerflow.runs import files as f
from layerflow.runs.ids import looks_like_run_id
from layerflow.runs.record import FINISHED_STATUSES, read_record

INDEX_FILE = "index.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    start TEXT,
    status TEXT,
    stamp TEXT NOT NULL,
    record TEXT NOT NULL
)
"""


def _stamp(run_dir: Path) -> str:
    """Changes whenever run.json is rewritten or metrics.jsonl is touched."""
    parts = []
    for name in (f.RUN_FILE, f.METRICS_FILE):
        try:
            stat = os.stat(run_dir / name)
            parts.append(f"{stat.st_mtime_ns}.{stat.st_size}")
        except FileNotFoundError:
            parts.append("-")
    return ":".join(parts)


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
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(_SCHEMA)
        return connection

    def run_dirs(self) -> dict[str, Path]:
        """Every run folder directly under the runs folder, by id."""
        if not self.runs_dir.is_dir():
            return {}
        with os.scandir(self.runs_dir) as entries:
            return {e.name: Path(e.path) for e in entries if looks_like_run_id(e.name) and e.is_dir()}

    def update(self, run_dirs: Iterable[Path]) -> None:
        """Re-reads the given run folders into the index."""
        rows = []
        for run_dir in run_dirs:
            record = read_record(run_dir)
            rows.append((record["id"], record.get("start"), record.get("status"), _stamp(run_dir),
                         json.dumps(record, default=str)))
        if not rows:
            return
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")

    def records(self) -> list[dict[str, Any]]:
        """All run records, refreshed from any folder that changed since it was indexed."""
        dirs = self.run_dirs()
        with closing(self._connect()) as db:
            indexed = {row[0]: (row[1], row[2]) for row in db.execute("SELECT id, stamp, status FROM runs")}
        stale = [
            path for run_id, path in dirs.items()
            if run_id not in indexed
            or indexed[run_id][1] not in FINISHED_STATUSES
            or indexed[run_id][0] != _stamp(path)
        ]
        gone = [run_id for run_id in indexed if run_id not in dirs]
        self.update(stale)
        with closing(self._connect()) as db:
            if gone:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("DELETE FROM runs WHERE id = ?", [(run_id,) for run_id in gone])
                db.execute("COMMIT")
            rows = db.execute("SELECT record FROM runs ORDER BY id").fetchall()
        return [json.loads(row[0]) for row in rows]

    def rebuild(self) -> int:
        """Drops the index and rebuilds it from the run folders; returns the number of runs."""
        with closing(self._connect()) as db:
            db.execute("DELETE FROM runs")
        dirs = self.run_dirs()
        self.update(dirs.values())
        return len(dirs)
