"""Assembling a run's record from its folder, whatever state the run was left in."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from layerflow.runs import files as f

FINISHED_STATUSES = ("completed", "failed", "stopped", "interrupted", "killed", "unfinished")
EPOCH_KEYS = f.EPOCH_KEYS


def process_alive(pid: int | None, host: str | None) -> bool:
    """Whether process ``pid`` on ``host`` is still running (assumed so for another host)."""
    if not pid:
        return False
    if host and host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def last_epoch_metrics(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of the last recorded epoch (the run's metric summary)."""
    if not epochs:
        return {}
    return {k: v for k, v in epochs[-1].items() if k not in EPOCH_KEYS}


def read_record(run_dir: Path) -> dict[str, Any]:
    """Reads everything known of one run into a dict, never raising on damaged files.

    Files the script's process writes while running (flags, evaluation, properties,
    Keras details, the exit marker) are merged over ``run.json``, so a run whose
    driver died still shows all it recorded. Damaged files are listed under ``problems``.
    """
    problems: list[str] = []

    def load(name: str, default: Any) -> Any:
        try:
            return f.read_json(run_dir / name, default)
        except f.CorruptRunFile as error:
            problems.append(str(error))
            return default

    record = load(f.RUN_FILE, None)
    if not isinstance(record, dict):
        if record is not None:
            problems.append(f"{run_dir / f.RUN_FILE} does not hold a JSON object.")
        status = "corrupt" if (run_dir / f.RUN_FILE).exists() else "unknown"
        record = {"id": run_dir.name, "status": status}
    record.setdefault("id", run_dir.name)

    flags = load(f.FLAGS_FILE, None)
    if isinstance(flags, dict):
        record["flags"] = flags.get("values", {})
        record["flag_types"] = flags.get("types", {})
    record.setdefault("flags", {})
    for key, name in (("evaluation", f.EVALUATION_FILE), ("properties", f.PROPERTIES_FILE), ("keras", f.KERAS_FILE)):
        value = load(name, None)
        if value is not None:
            record[key] = value
        record.setdefault(key, {})

    epochs, bad_lines = f.read_metrics(run_dir / f.METRICS_FILE)
    if bad_lines:
        problems.append(f"{run_dir / f.METRICS_FILE}: lines {bad_lines} are not valid JSON and were skipped.")
    record["metrics"] = last_epoch_metrics(epochs)
    record["epochs_completed"] = len(epochs)

    exit_marker = load(f.EXIT_FILE, None)
    # A run on a cluster (``remote``) is judged there, not by a local process: ``cloud collect`` files its end.
    if record.get("status") == "running" and not record.get("remote"):
        if isinstance(exit_marker, dict) and not process_alive(record.get("driver_pid"), record.get("host")):
            record.update({k: v for k, v in exit_marker.items() if k in ("status", "error", "end")})
        elif not process_alive(record.get("driver_pid"), record.get("host")):
            record["status"] = "unfinished"
            record.setdefault("error", "the process running it ended without recording an end (killed?)")
    record["problems"] = problems
    return record


BASE_COLUMNS = ["id", "status", "script", "start", "end"]


def flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    """One table row: ``flag_*``, ``metric_*`` (last epoch), ``eval_*``, ``prop_*`` columns."""
    row = {column: record.get(column) for column in BASE_COLUMNS}
    for prefix, key in (("flag_", "flags"), ("metric_", "metrics"), ("eval_", "evaluation"), ("prop_", "properties")):
        values = record.get(key) or {}
        if isinstance(values, dict):
            row.update({f"{prefix}{name}": value for name, value in values.items()})
    row["epochs"] = record.get("epochs_completed")
    row["error"] = record.get("error")
    return row
