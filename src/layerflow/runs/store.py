"""Where runs live, finding one by reference (``latest``, ``latest~1``, an id or prefix), and
the run lifecycle: the store is the one writer of ``run.json``.

A run is opened (its folder and record made), updated while it runs (its source snapshot,
its job id on a cluster), and finished (its end and status, merged with what the script
recorded), or, for a run made elsewhere (a Ray job), filed from the folder it sent back.
Local runs, tuning trials and Ray jobs all go through these four steps.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from layerflow.errors import LayerflowError
from layerflow.runs import files as f
from layerflow.runs.archive import unpack_run
from layerflow.runs.environment import environment
from layerflow.runs.ids import looks_like_run_id, new_run_folder
from layerflow.runs.index import RunIndex
from layerflow.runs.record import read_record

RUNS_DIR_ENV = "LAYERFLOW_RUNS_DIR"
DEFAULT_RUNS_DIR = "runs"
ARCHIVE_DIR = "_archive"

_LATEST = re.compile(r"^latest(?:~(\d+))?$")


class RunNotFoundError(LayerflowError, LookupError):
    """A run reference that matches no run (or several).

    Example:
        >>> try:
        ...     lf.run_info("no-such-run")
        ... except lf.RunNotFoundError as error:
        ...     print(error)  # names the runs folder and the references it takes
    """


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

    # --- the run lifecycle: the only code that writes run.json -------------------------------

    def _write(self, run_dir: Path, record: Mapping[str, Any]) -> None:
        f.write_json(run_dir / f.RUN_FILE, dict(record))
        self.index.update([run_dir])

    def open_run(
        self,
        script: Path,
        args: Sequence[str] = (),
        requested_flags: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        remote: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> tuple[str, Path]:
        """Makes a run's folder and its first record (status ``running``); returns (id, folder).

        A run driven by this process records its pid and environment, so that a run whose
        driver died is seen as ``unfinished``; a ``remote`` run (a Ray job) is judged by its
        cluster instead, and brings its environment back with its folder. ``fields`` are
        further record entries (e.g. ``rerun_of``).
        """
        run_id, run_dir, start = new_run_folder(self.path, run_id)
        script = Path(script)
        record: dict[str, Any] = {
            "id": run_id,
            "script": os.path.relpath(script) if script.is_relative_to(Path.cwd()) else str(script),
            "args": list(args),
            "start": start.isoformat(),
            "end": None,
            "status": "running",
            "host": socket.gethostname(),
            "cwd": os.getcwd(),
            "requested_flags": dict(requested_flags or {}),
            "properties": dict(properties or {}),
            **fields,
        }
        if remote is None:
            record.update({"driver_pid": os.getpid(), "environment": environment()})
        else:
            record["remote"] = dict(remote)
        self._write(run_dir, record)
        if properties:
            f.write_json(run_dir / f.PROPERTIES_FILE, dict(properties))
        return run_id, run_dir

    def update_run(self, run_dir: Path, **fields: Any) -> dict[str, Any]:
        """Merges ``fields`` into a running run's record (its source snapshot, its job id...)."""
        record = f.read_json(run_dir / f.RUN_FILE, {}) or {}
        record.update(fields)
        self._write(run_dir, record)
        return record

    def finish_run(
        self, run_dir: Path, status: str, error: str | None = None, end: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Records a run's end: ``status``, ``error``, ``end`` and ``fields``, over everything the
        script recorded (flags, metrics, evaluation...); returns the final record with its ``path``."""
        record = read_record(run_dir)
        record.pop("problems", None)
        record.update(fields)
        record.update({"status": status, "error": error, "end": end or datetime.now(UTC).isoformat()})
        self._write(run_dir, record)
        return self.final_record(run_dir)

    def file_returned_run(self, run_dir: Path, archive: bytes) -> dict[str, Any]:
        """Files the folder of a run made elsewhere (``pack_run``'s archive) into its open run folder.

        The returned files replace the ones followed so far (output, metrics); the record keeps
        this side's script path, host and working directory, and the ``remote`` details (with
        the host the run ran on).
        """
        local = f.read_json(run_dir / f.RUN_FILE, {}) or {}
        for stale in (f.OUTPUT_FILE, f.METRICS_FILE):
            (run_dir / stale).unlink(missing_ok=True)
        unpack_run(archive, run_dir)
        returned = f.read_json(run_dir / f.RUN_FILE, {}) or {}
        returned.update(
            {
                "script": local.get("script"),
                "host": local.get("host"),
                "cwd": local.get("cwd"),
                "remote": {**(local.get("remote") or {}), "host": returned.get("host")},
            }
        )
        self._write(run_dir, returned)
        return self.final_record(run_dir)

    def final_record(self, run_dir: Path) -> dict[str, Any]:
        """A run's record as its folder holds it now, with its ``path``."""
        record = read_record(run_dir)
        record.pop("problems", None)
        record["path"] = str(run_dir)
        return record

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
