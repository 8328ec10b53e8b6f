"""A run folder as one archive, so that a run made on another machine can be filed here."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def pack_run(run_dir: str | Path) -> bytes:
    """The run folder's files as a gzipped tar (paths relative to the folder)."""
    run_dir = Path(run_dir)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        for path in sorted(run_dir.rglob("*")):
            if path.is_file() and not path.name.endswith(".tmp"):
                archive.add(path, arcname=path.relative_to(run_dir).as_posix(), recursive=False)
    return buffer.getvalue()


def unpack_run(data: bytes, run_dir: str | Path) -> None:
    """Writes an archive made by ``pack_run`` into ``run_dir``, replacing files of the same name.

    Entries that would land outside the folder (absolute paths, ``..``, links) are refused.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(run_dir, filter="data")
