"""Tracked training runs: run a script, record everything, list, show, compare, copy and tidy runs.

Only what users call is exported here; the run store (``layerflow.runs.store.RunStore``),
the index and the record assembly are internal.

Example:
    >>> import layerflow as lf
    >>> run = lf.training_run("train.py", flags={"dropout": 0.3})
    >>> lf.ls_runs(order="eval_accuracy", decreasing=True).head()
"""

from layerflow.runs.context import current_run_dir, is_tracked, log_metrics, run_properties, write_run_data
from layerflow.runs.copy_run import copy_run
from layerflow.runs.ls_runs import ls_runs
from layerflow.runs.manage import archived_runs, clean_runs, purge_runs, run_info
from layerflow.runs.report import compare_runs, view_run
from layerflow.runs.rerun import rerun
from layerflow.runs.store import RunNotFoundError
from layerflow.runs.training_run import RunControl, training_run

__all__ = [
    "RunControl",
    "RunNotFoundError",
    "archived_runs",
    "clean_runs",
    "compare_runs",
    "copy_run",
    "current_run_dir",
    "is_tracked",
    "log_metrics",
    "ls_runs",
    "purge_runs",
    "rerun",
    "run_info",
    "run_properties",
    "training_run",
    "view_run",
    "write_run_data",
]
