"""Run ids: sortable by start time, never colliding, also between parallel processes."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from layerflow.errors import InvalidValueError, LayerflowError

RUN_ID_LENGTH = len("20260101T000000-000000-0000")


class RunExistsError(LayerflowError, FileExistsError):
    """A run id asked for that a run in the runs folder already has."""


def format_run_id(start: datetime) -> str:
    """The id of a run started at ``start`` (UTC): sortable by time, with 16 random bits against collisions."""
    return f"{start:%Y%m%dT%H%M%S}-{start:%f}-{secrets.token_hex(2)}"


def new_run_folder(runs_dir: Path, run_id: str | None = None) -> tuple[str, Path, datetime]:
    """Creates a fresh run folder under ``runs_dir``; returns (id, folder, start time).

    The id is the UTC start time to the microsecond plus a random suffix; the folder is
    created with an exclusive ``mkdir``, so two processes can never take the same id.
    A given ``run_id`` (a run made elsewhere, filed here under its own id) must be free.
    """
    runs_dir.mkdir(parents=True, exist_ok=True)
    if run_id is not None:
        if not looks_like_run_id(run_id):
            raise InvalidValueError(f"{run_id!r} is not a run id; expected one like '20260101T000000-000000-0a1b'.")
        folder = runs_dir / run_id
        try:
            os.mkdir(folder)
        except FileExistsError:
            raise RunExistsError(f"Run {run_id} already exists in {runs_dir}.") from None
        return run_id, folder, datetime.now(UTC)
    while True:
        start = datetime.now(UTC)
        run_id = format_run_id(start)
        folder = runs_dir / run_id
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        return run_id, folder, start


def looks_like_run_id(name: str) -> bool:
    """True for folder names made by ``new_run_folder``."""
    return len(name) == RUN_ID_LENGTH and name[8] == "T" and name[:8].isdigit()
