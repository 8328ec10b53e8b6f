"""Reading one run's files for the UI: curves, a window of the log, sources, plots and data.

Everything here reads at most a bounded number of bytes, whatever the size of the file,
and refuses any path that leads outside the run's folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from layerflow.runs import files as f
from layerflow.runs.report import clean_console_text, curves  # noqa: F401 - curves: the charts' columns
from layerflow.runs.source_files import (  # noqa: F401 - the one reader of a run's sources, used by the app
    UnsafePathError,
    read_source,
    run_file,
    source_files,
)
from layerflow.runs.system_metrics import read_system_metrics as system_curves  # noqa: F401 - the system charts' columns

LOG_PAGE_BYTES = 256 * 1024


def read_new_metric_lines(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete metrics.jsonl lines after byte ``offset``; returns them and the offset after the last one.

    A line still being written (no newline yet) is left for the next call.
    """
    try:
        with open(path, "rb") as stream:
            stream.seek(offset)
            data = stream.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    if end == 0:
        return [], offset
    records, _ = f.parse_metric_lines(data[:end].decode(errors="replace").splitlines())
    return records, offset + end


def read_log(path: Path, offset: int | None = None, length: int = LOG_PAGE_BYTES) -> dict[str, Any]:
    """A window of output.log as a reader sees it (colour codes and redraws applied).

    Args:
        path: the log file.
        offset: the first byte to show (default: the last ``length`` bytes).
        length: bytes to show at most.

    Returns:
        ``{"text", "offset", "end", "size"}``: the window's text and byte range, and the file size.
    """
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return {"text": "", "offset": 0, "end": 0, "size": 0}
    length = max(1, min(length, 4 * LOG_PAGE_BYTES))
    start = max(0, size - length) if offset is None else max(0, min(offset, size))
    with open(path, "rb") as stream:
        stream.seek(start)
        data = stream.read(length)
    text = data.decode(errors="replace")
    return {"text": clean_console_text(text), "offset": start, "end": start + len(data), "size": size}


def folder_files(run_dir: Path, name: str) -> list[dict[str, Any]]:
    """Files under ``run_dir/name`` (plots, data, model) with their sizes."""
    root = run_dir / name
    if not root.is_dir():
        return []
    out = []
    for folder, _, names in os.walk(root):
        for file_name in sorted(names):
            path = Path(folder, file_name)
            out.append(
                {
                    "path": path.relative_to(run_dir).as_posix(),
                    "name": path.relative_to(root).as_posix(),
                    "size": path.stat().st_size,
                }
            )
    return sorted(out, key=lambda item: item["path"])


def small_text(path: Path, limit: int = 200_000) -> str | None:
    """A small text file's content (model summary), None when absent."""
    try:
        with open(path, "rb") as stream:
            return stream.read(limit).decode(errors="replace")
    except FileNotFoundError:
        return None


def to_json(value: Any) -> str:
    """A JavaScript literal for a <script> element (NaN stays NaN; no ``</`` that would end the element)."""
    return json.dumps(value, default=str).replace("</", "<\\/")
