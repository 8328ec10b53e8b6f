"""Tidying a runs folder: ``lf.run_info``, ``lf.clean_runs`` (archive) and ``lf.purge_runs`` (delete).

As in tfruns, cleaning moves runs into ``RUNS_DIR/_archive`` (out of every listing, still
on disk) and purging deletes the archived ones for good.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from layerflow.errors import InvalidTypeError, InvalidValueError
from layerflow.runs.record import FINISHED_STATUSES
from layerflow.runs.store import RunStore

# A run that is neither still going nor completed: what ``clean_runs(failed=True)`` archives.
_UNSUCCESSFUL = tuple(s for s in FINISHED_STATUSES if s != "completed") + ("corrupt", "unknown")


def run_info(run: str | os.PathLike[str] = "latest", runs_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The full record of one run: flags, metrics, evaluation, properties, environment, source.

    Args:
        run: a run id, an id prefix, ``latest``, ``latest~N`` or a run folder.
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).

    Returns:
        The run's record as a dict (what ``run.json`` holds, completed by the files the
        script wrote), with its folder under ``path``.

    Raises:
        RunNotFoundError: no run (or several) matches ``run``.

    Example:
        >>> info = lf.run_info("latest")
        >>> info["status"], info["flags"], info["path"]
    """
    return RunStore(runs_dir).record(run)


def _chosen_ids(store: RunStore, runs: Any) -> set[str]:
    if runs is None:
        return set()
    if hasattr(runs, "columns"):  # a DataFrame from ls_runs
        if "id" not in runs.columns:
            raise InvalidValueError("clean_runs(runs=DataFrame) needs an 'id' column, as lf.ls_runs() returns.")
        runs = list(runs["id"])
    elif isinstance(runs, (str, os.PathLike)):
        runs = [runs]
    elif not isinstance(runs, Iterable):
        raise InvalidTypeError(
            f"runs= takes run references (ids, latest, latest~N) or an ls_runs DataFrame; got a {type(runs).__name__}."
        )
    return {store.resolve(ref).name for ref in runs}


def clean_runs(
    runs: Any = None,
    failed: bool = False,
    all: bool = False,  # noqa: A002 - tfruns' and the command line's name
    runs_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Archives runs: moves them into ``RUNS_DIR/_archive``, out of every listing.

    Say which runs with any of the three choices (they add up); asking for none is an
    error, so that a bare call never archives everything.

    Args:
        runs: run references (ids, prefixes, ``latest``, ``latest~N``), one reference, or a
            DataFrame from ``lf.ls_runs`` (its ``id`` column).
        failed: also archive every run that ended without completing (failed, stopped,
            interrupted, killed, unfinished, corrupt).
        all: archive every run.
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).

    Returns:
        The ids of the runs archived, oldest first.

    Raises:
        InvalidValueError: no runs were chosen.
        RunNotFoundError: a reference matches no run.

    Example:
        >>> lf.clean_runs(lf.ls_runs(filter="eval_accuracy < 0.8"))
        >>> lf.clean_runs(failed=True)
    """
    if runs is None and not failed and not all:
        raise InvalidValueError(
            "Say which runs to archive: run ids (or an ls_runs DataFrame), failed=True or all=True."
        )
    store = RunStore(runs_dir)
    chosen = _chosen_ids(store, runs)
    if failed or all:
        chosen |= {r["id"] for r in store.records() if all or r.get("status") in _UNSUCCESSFUL}
    return store.archive(sorted(chosen))


def purge_runs(runs_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Deletes every archived run (see ``clean_runs``) for good.

    Args:
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).

    Returns:
        The ids of the runs deleted.

    Example:
        >>> lf.clean_runs(failed=True)
        >>> lf.purge_runs()
    """
    return RunStore(runs_dir).purge()


def archived_runs(runs_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The ids of the archived runs that ``purge_runs`` would delete.

    Args:
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).

    Returns:
        The archived run ids, oldest first.

    Example:
        >>> len(lf.runs.archived_runs())
        0
    """
    return RunStore(runs_dir).archived()


__all__ = ["archived_runs", "clean_runs", "purge_runs", "run_info"]
