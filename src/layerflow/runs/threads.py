"""Math-library threads for runs that share a machine, so that they share its cores."""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def thread_limits(parallel: int = 1, threads: int | None = None) -> dict[str, str]:
    """The environment variables that cap a run's math-library threads.

    Either ``parallel`` runs share this machine's cores (each gets ``cores // parallel``;
    nothing is capped for one run, nor where the user has set any of the variables), or
    a run gets exactly ``threads`` (the CPUs it reserved on a cluster).

    Args:
        parallel: runs sharing this machine at once.
        threads: the threads a run may use, where known (overrides ``parallel``).

    Returns:
        ``{"OMP_NUM_THREADS": "4", ...}``, or ``{}`` when nothing needs capping.

    Example:
        >>> thread_limits(threads=2)["OMP_NUM_THREADS"]
        '2'
    """
    if threads is not None:
        return {name: str(max(1, int(threads))) for name in THREAD_VARIABLES}
    if parallel <= 1 or any(name in os.environ for name in THREAD_VARIABLES):
        return {}
    per_run = str(max(1, (os.cpu_count() or 1) // parallel))
    return {name: per_run for name in THREAD_VARIABLES}
