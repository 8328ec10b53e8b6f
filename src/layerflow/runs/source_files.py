"""Reading a run's source snapshot back: the one reader (and its size limits) of reports and ``layerflow ui``.

Reads are bounded whatever the snapshot holds: at most ``MAX_SOURCE_FILES`` files are listed,
at most ``MAX_SOURCE_BYTES`` bytes of each are read, binary files are left out, and no path may
lead outside the run's folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from layerflow.errors import LayerflowError, MissingFileError
from layerflow.runs import files as f

MAX_SOURCE_BYTES = 200_000
MAX_SOURCE_FILES = 500
CUT_MARK = "\n... (cut)"


class UnsafePathError(LayerflowError, PermissionError):
    """A file path that leads outside the run's folder (``..``, an absolute path, a link out)."""


def run_file(run_dir: Path, relative: str) -> Path:
    """The file ``relative`` inside ``run_dir``; UnsafePathError if it leads outside, MissingFileError if absent.

    Args:
        run_dir: the run's folder (or a folder inside it, such as its source snapshot).
        relative: a path inside it, e.g. ``plots/history.png``.

    Returns:
        The resolved path of the file.

    Example:
        >>> run_file(Path("runs/20260101T000000-000000-0a1b"), "plots/history.png")
    """
    root = run_dir.resolve()
    path = (root / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(root):
        raise UnsafePathError(f"{relative!r} leads outside the run folder; give a path inside it, e.g. plots/x.png.")
    if not path.is_file():
        raise MissingFileError(f"The run has no file {relative!r}.")
    return path


def source_files(run_dir: Path) -> list[str]:
    """Paths of the source snapshot's files, relative to it and sorted (at most ``MAX_SOURCE_FILES``).

    Args:
        run_dir: the run's folder.

    Returns:
        The relative paths (``[]`` when the run has no snapshot).

    Example:
        >>> source_files(Path("runs/20260101T000000-000000-0a1b"))
        ['train.py', 'utils/data.py']
    """
    root = run_dir / f.SOURCE_DIR
    if not root.is_dir():
        return []
    found: list[str] = []
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            found.append(Path(folder, name).relative_to(root).as_posix())
            if len(found) >= MAX_SOURCE_FILES:
                return sorted(found)
    return sorted(found)


def read_source(run_dir: Path, relative: str) -> str | None:
    """The text of one snapshot file, cut at ``MAX_SOURCE_BYTES`` (then ending in ``CUT_MARK``).

    Args:
        run_dir: the run's folder.
        relative: the file's path inside the snapshot, as ``source_files`` lists it.

    Returns:
        The text, or None for a binary file (a NUL byte in its first 8 KiB).

    Raises:
        UnsafePathError: ``relative`` leads outside the snapshot.
        MissingFileError: the snapshot has no such file.

    Example:
        >>> read_source(Path("runs/20260101T000000-000000-0a1b"), "train.py")[:12]
        'import keras'
    """
    path = run_file(run_dir / f.SOURCE_DIR, relative)
    with open(path, "rb") as stream:
        data = stream.read(MAX_SOURCE_BYTES + 1)
    if b"\0" in data[:8192]:
        return None
    text = data[:MAX_SOURCE_BYTES].decode(errors="replace")
    return text + (CUT_MARK if len(data) > MAX_SOURCE_BYTES else "")


def read_sources(run_dir: Path) -> dict[str, str]:
    """Every text file of the snapshot (as ``source_files`` lists them and ``read_source`` reads them).

    Args:
        run_dir: the run's folder.

    Returns:
        Relative path -> text, sorted by path; binary and unreadable files left out.

    Example:
        >>> list(read_sources(Path("runs/20260101T000000-000000-0a1b")))
        ['train.py', 'utils/data.py']
    """
    sources = {}
    for relative in source_files(run_dir):
        try:
            text = read_source(run_dir, relative)
        except (OSError, LayerflowError):  # vanished, unreadable, or a link leading out of the snapshot
            continue
        if text is not None:
            sources[relative] = text
    return sources
