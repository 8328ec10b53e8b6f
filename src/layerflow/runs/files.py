"""The run folder contract: file names, atomic JSON writes, tolerant reading."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from layerflow.errors import LayerflowError

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
OUTPUT_FILE = "output.log"
SOURCE_DIR = "source"
PLOTS_DIR = "plots"
MODEL_DIR = "model"
DATA_DIR = "data"
# Written by the script's process while it runs; merged into run.json when it ends.
FLAGS_FILE = "flags.json"
EVALUATION_FILE = "evaluation.json"
PROPERTIES_FILE = "properties.json"
KERAS_FILE = "keras.json"
SUMMARY_FILE = "model_summary.txt"
EXIT_FILE = "exit.json"
# <runs>/tunings/<tuning_id>.json: a tuning run's optimisation history and flag importances
# (written by layerflow.tuning, read by the UI's tuning page).
TUNINGS_DIR = "tunings"
# Keys of a metrics.jsonl line that are bookkeeping, not metrics.
EPOCH_KEYS = ("epoch", "time", "fit")


class CorruptRunFile(LayerflowError, ValueError):
    """A run file that exists but cannot be read as what the contract says it holds."""


def write_json(path: Path, data: Any) -> None:
    """Writes JSON atomically: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as stream:
            json.dump(data, stream, indent=2, default=_json_default, allow_nan=True)
            stream.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def read_json(path: Path, default: Any = None) -> Any:
    """Reads a JSON file; ``default`` when absent; CorruptRunFile when unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CorruptRunFile(f"{path} is not valid JSON ({error.msg} at line {error.lineno}).") from None


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Appends one JSON line and flushes it, so a crash right after keeps it."""
    line = json.dumps(record, default=_json_default, allow_nan=True)
    with open(path, "a") as stream:
        stream.write(line + "\n")
        stream.flush()


def parse_metric_lines(lines: Iterable[str]) -> tuple[list[dict[str, Any]], list[int]]:
    """Parses ``metrics.jsonl`` lines; returns the good epoch records and the numbers (from 1) of bad lines."""
    records: list[dict[str, Any]] = []
    bad: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad.append(number)
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad.append(number)
    return records, bad


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Reads ``metrics.jsonl``; returns the good epoch records and the numbers of bad lines."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return [], []
    return parse_metric_lines(lines)


def metric_series(epochs: Iterable[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """``metrics.jsonl`` records -> ``{metric: [(epoch, value), ...]}``, one series per metric.

    Bookkeeping keys (epoch, time, fit) and non-numeric values are left out; a line
    without an epoch number counts as the next epoch of each of its metrics.
    """
    series: dict[str, list[tuple[int, float]]] = {}
    for line in epochs:
        for key, value in line.items():
            if key in EPOCH_KEYS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            points = series.setdefault(key, [])
            epoch = line.get("epoch")
            points.append((epoch if isinstance(epoch, int) else len(points) + 1, float(value)))
    return series


def read_metric_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The per-metric series of a run folder's ``metrics.jsonl`` (damaged lines skipped)."""
    return metric_series(read_metrics(Path(run_dir) / METRICS_FILE)[0])
