"""Tracked training runs: run a script, record everything, list, show and compare runs."""

from layerflow.runs.context import current_run_dir, is_tracked, log_metrics, run_properties, write_run_data
from layerflow.runs.index import RunIndex
from layerflow.runs.ls_runs import ls_runs
from layerflow.runs.manage import archived_runs, clean_runs, purge_runs, run_info
from layerflow.runs.record import read_record
from layerflow.runs.report import compare_runs, view_run
from layerflow.runs.store import RunNotFoundError, RunStore, runs_dir
from layerflow.runs.training_run import RunControl, training_run

__all__ = [
    "RunIndex",
    "RunControl",
    "RunNotFoundError",
    "RunStore",
    "archived_runs",
    "clean_runs",
    "compare_runs",
    "current_run_dir",
    "is_tracked",
    "log_metrics",
    "ls_runs",
    "purge_runs",
    "read_record",
    "run_info",
    "run_properties",
    "runs_dir",
    "training_run",
    "view_run",
    "write_run_data",
]
