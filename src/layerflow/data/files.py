"""The files a dataset reads: glob patterns expanded, sorted, an error when nothing matches.

A leaf of ``layerflow.data``: every file reader (``csv_files``, ``readers``) imports it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from layerflow.data.errors import DatasetFileNotFoundError


def list_files(file_pattern: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Files matching a glob pattern (or a list of patterns), sorted per pattern; an error if none.

    Args:
        file_pattern: a path or glob (``**`` recurses), or a list of them.

    Returns:
        The matching paths that are files.

    Example:
        >>> lf.data.list_files("data/*.csv")
        ['data/a.csv', 'data/b.csv']
    """
    patterns = [file_pattern] if isinstance(file_pattern, (str, os.PathLike)) else list(file_pattern)
    files: list[str] = []
    for pattern in patterns:
        matched = sorted(glob.glob(os.fspath(pattern), recursive=True))
        files += [f for f in matched if os.path.isfile(f)]
    if not files:
        raise DatasetFileNotFoundError(f"No files match {file_pattern!r} (looked from {Path.cwd()}).")
    return files
