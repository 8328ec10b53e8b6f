"""``lf.copy_run`` / ``layerflow runs copy``: a run's folder copied elsewhere (tfruns' copy_run)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from layerflow.errors import InvalidValueError
from layerflow.runs.store import RunStore


def copy_run(
    run: str | os.PathLike[str] = "latest",
    to: str | os.PathLike[str] = ".",
    rename: str | None = None,
    runs_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Copies a run's folder (record, metrics, output, source, plots, model, data) into ``to``.

    The copy is a plain folder: use it to keep a run's model and files with a project, or
    to share a run (another runs folder files it when copied there under its own id).

    Args:
        run: a run id, an id prefix, ``latest``, ``latest~N`` or a run folder.
        to: the folder to copy into (created if needed).
        rename: the copy's folder name (default: the run's id).
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).

    Returns:
        The folder written, ``to/<id>`` (or ``to/<rename>``).

    Raises:
        RunNotFoundError: no run (or several) matches ``run``.
        InvalidValueError: the target exists already, ``rename`` is not a plain folder name,
            or the target lies inside the run's own folder.

    Example:
        >>> lf.copy_run("latest", to="best-model")          # -> best-model/<run id>/
        >>> lf.copy_run("latest", to=".", rename="baseline")  # -> ./baseline/
    """
    source = RunStore(runs_dir).resolve(run)
    name = source.name if rename is None else str(rename)
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise InvalidValueError(f"rename={rename!r} must be a plain folder name such as 'baseline'.")
    target = Path(to).absolute() / name
    if target.exists():
        raise InvalidValueError(f"{target} exists already; copy the run elsewhere or give rename=.")
    if target.resolve().is_relative_to(source.resolve()):
        raise InvalidValueError(f"Cannot copy run {source.name} into its own folder ({target}).")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.tmp"))
    return target
