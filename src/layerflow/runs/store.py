"""Where runs live, and finding one by reference (``latest``, ``latest~1``, an id or prefix)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from layerflow.errors import LayerflowError
from layerflow.runs.ids import looks_like_run_id
from layerflow.runs.index import RunIndex
from layerflow.runs.record import read_record

RUNS_DIR_ENV = "LAYERFLOW_RUNS_DIR"
DEFAULT_RUNS_DIR = "runs"
ARCHIVE_DIR = "_archive"

_LATEST = re.compile(r"^latest(?:~(\d+))?$")


class RunNotFoundError(LayerflowError, LookupError):
    """A run reference that matches no run (or several)."""


def runs_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The runs folder: ``path`` if given, else ``$LAYERFLOW_RUNS_DIR``, else ``./runs``."""
    return Path(path or os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR).absolute()


class RunStore:
    """One runs folder: its run folders, its index, and its archive."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = runs_dir(path)
        self.index = RunIndex(self.path)

    @property
    def archive_path(self) -> Path:
        return self.path / ARCHIVE_DIR

    def records(self) -> list[dict[str, Any]]:
        """Every run's record, oldest first."""
        return self.index.records()

    def resolve(self, ref: str | os.PathLike[str]) -> Path:
        """Finds a run folder by ``latest``, ``latest~N``, a full id, an id prefix or a path."""
        text = str(ref)
        if looks_like_run_id(text) and (self.path / text).is_dir():
            return self.path / text
        ids = sorted(self.index.run_dirs())
        match = _LATEST.match(text)
        if match:
            back = int(match.group(1) or 0)
            if back >= len(ids):
                raise RunNotFoundError(
                    f"{text!r}: {self.path} holds {len(ids)} run(s); {text} needs at least {back + 1}."
                )
            return self.path / ids[-1 - back]
        candidate = Path(text)
        if candidate.is_dir() and (candidate / "run.json").exists():
            return candidate.absolute()
        matches = [i for i in ids if i.startswith(text)]
        if len(matches) == 1:
            return self.path / matches[0]
        if not matches:
            raise RunNotFoundError(
                f"No run {text!r} in {self.path}; use a run id (see `layerflow runs`), "
                "an id prefix, latest or latest~N."
            )
        raise RunNotFoundError(f"Run reference {text!r} is ambiguous: it matches {', '.join(matches[:5])}...")

    def record(self, ref: str | os.PathLike[str]) -> dict[str, Any]:
        """The record of the run ``ref`` refers to."""
        run_dir = self.resolve(ref)
        record = read_record(run_dir)
        record["path"] = str(run_dir)
        return record

    def archive(self, run_ids: list[str]) -> list[str]:
        """Moves runs into the archive folder (``layerflow runs purge`` deletes them)."""
        self.archive_path.mkdir(parents=True, exist_ok=True)
        moved = []
        for run_id in run_ids:
            source = self.path / run_id
            if source.is_dir():
                shutil.move(str(source), self.archive_path / run_id)
                moved.append(run_id)
        self.index.records()  # drops the archived rows
        return moved

    def archived(self) -> list[str]:
        """Ids of archived runs."""
        if not self.archive_path.is_dir():
            return []
        return sorted(p.name for p in self.archive_path.iterdir() if p.is_dir())

    def purge(self) -> list[str]:
        """Deletes every archived run for good; returns their ids."""
        ids = self.archived()
        for run_id in ids:
            shutil.rmtree(self.archive_path / run_id)
        return ids
