"""Snapshot of a script's folder: what the run ran, size-capped, .gitignore honoured."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from layerflow.errors import LayerflowError

MAX_FILE_BYTES = 1 * 1024 * 1024
MAX_TOTAL_BYTES = 20 * 1024 * 1024
# Folders never copied into a run's source snapshot nor uploaded with a script to a cluster.
NEVER_COPIED = (".git", ".venv", "venv", "__pycache__", "node_modules", ".ipynb_checkpoints", ".pytest_cache")


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


class TooManyFiles(LayerflowError, OverflowError):
    """A folder holding more files than ``candidate_files`` was asked to list."""


def candidate_files(folder: Path, exclude: list[Path], limit: int | None = None) -> list[Path]:
    """The files under ``folder`` a run keeps: ``.gitignore`` honoured, ``NEVER_COPIED`` and ``exclude`` left out.

    With ``limit``, a folder listing more files than that raises ``TooManyFiles`` instead of
    being walked to its end (a working directory such as a home folder).
    """
    excluded = [e.resolve() for e in exclude]
    listed = _git(folder, "ls-files", "--cached", "--others", "--exclude-standard", "-z", ".")
    if listed is not None:
        files = [folder / name for name in listed.split("\0") if name]
        if limit is not None and len(files) > limit:
            raise TooManyFiles(folder)
    else:
        import pathspec

        ignore = folder / ".gitignore"
        spec = pathspec.GitIgnoreSpec.from_lines(ignore.read_text().splitlines() if ignore.is_file() else [])
        files = []
        for root, dirs, names in os.walk(folder):
            dirs[:] = [
                d
                for d in dirs
                if d not in NEVER_COPIED and not d.startswith(".") and (Path(root) / d).resolve() not in excluded
            ]
            for name in names:
                path = Path(root) / name
                if not spec.match_file(path.relative_to(folder).as_posix()):
                    files.append(path)
            if limit is not None and len(files) > limit:
                raise TooManyFiles(folder)
    kept = []
    for path in files:
        resolved = path.resolve()
        parts = path.relative_to(folder).parts
        if any(p in NEVER_COPIED for p in parts) or not path.is_file():
            continue
        if any(resolved == e or e in resolved.parents for e in excluded):
            continue
        kept.append(path)
    return sorted(kept)


def snapshot_source(folder: Path, target: Path, exclude: list[Path]) -> dict[str, Any]:
    """Copies ``folder``'s files into ``target``; returns hash, counts and what was skipped.

    Files over 1 MiB, or past 20 MiB in all, are left out and listed.
    """
    total, copied, skipped = 0, 0, []
    digest = hashlib.sha256()
    for path in candidate_files(folder, exclude):
        relative = path.relative_to(folder)
        size = path.stat().st_size
        if size > MAX_FILE_BYTES or total + size > MAX_TOTAL_BYTES:
            skipped.append(str(relative))
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        digest.update(relative.as_posix().encode() + b"\0" + destination.read_bytes() + b"\0")
        total += size
        copied += 1
    return {"source_hash": digest.hexdigest(), "source_files": copied, "source_bytes": total, "source_skipped": skipped}


def git_state(folder: Path) -> dict[str, Any] | None:
    """The commit (and whether the tree is dirty) of the repository holding ``folder``."""
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return None
    status = _git(folder, "status", "--porcelain") or ""
    return {"commit": commit.strip(), "dirty": bool(status.strip())}
