"""``lf.cloud.cloud_train | cloud_jobs | cloud_logs | cloud_collect | cloud_cancel``: tracked runs as Ray jobs."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from layerflow.cloud.cluster import ClusterError, RayCluster
from layerflow.cloud.job_log import output_only
from layerflow.cloud.remote_run import RemoteRun
from layerflow.cloud.remote_run import echo as echo_line
from layerflow.errors import training_stack
from layerflow.runs.training_run import check_script


def cloud_train(
    script: str | os.PathLike[str] = "train.py",
    flags: Mapping[str, Any] | None = None,
    address: str | None = None,
    cpus: float = 1,
    gpus: float = 0,
    requirements: str | os.PathLike[str] | None = None,
    detach: bool = False,
    runs_dir: str | os.PathLike[str] | None = None,
    command_line_flags: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    echo: bool = True,
) -> dict[str, Any]:
    """Runs a script as a tracked run on a Ray cluster and files the run here.

    The script's folder is uploaded as the job's working directory (``.gitignore`` and
    the runs dir left out); the job runs it as ``layerflow run`` would, streams its
    output here, and sends its run folder back when it ends. With ``detach`` it returns
    once submitted; ``cloud_collect`` files the run later.

    Args:
        script: the training script; layerflow must be installed on the cluster.
        flags: flag values (as ``training_run(flags=)``).
        address: the cluster's job-submission address, e.g. ``http://head:8265``
            (default ``$RAY_API_SERVER_ADDRESS``), or ``"local"`` to start a cluster here.
        cpus: CPUs the run takes on the cluster.
        gpus: GPUs the run takes on the cluster.
        requirements: a pip requirements file installed for the job.
        detach: return once the job is submitted.
        runs_dir: the local runs folder.
        command_line_flags: ``--flag name=value`` strings.
        args: further command-line arguments for the script.
        echo: print the job's output here as it comes.

    Returns:
        The run's record (status ``running`` when detached).

    Raises:
        ClusterError: no cluster at ``address``, or it refused the job.

    Example:
        >>> run = lf.cloud.cloud_train("train.py", flags={"epochs": 30}, address="http://head:8265", gpus=1)
    """
    script_path = check_script(script)
    if detach and address == "local":
        raise ClusterError("--detach needs a cluster that outlives this command; --address local stops with it.")
    cluster = RayCluster.connect(address)
    try:
        run = RemoteRun.submit(
            cluster,
            script_path,
            flags=flags,
            runs_dir=runs_dir,
            args=args,
            command_line_flags=command_line_flags,
            cpus=cpus,
            gpus=gpus,
            requirements=requirements,
        )
        if echo:
            print(f"Submitted Ray job {run.job_id} for run {run.run_id} to {cluster.address}", file=sys.stderr)
        if detach:
            return run.final_record()
        try:
            record = run.follow(on_output=echo_line if echo else None)
        except KeyboardInterrupt:
            try:
                run.cancel("interrupted", "interrupted (Ctrl-C): the Ray job was stopped")
            except ClusterError as error:  # still file the run; the interrupt goes on
                print(error, file=sys.stderr)
            run.file_now()
            raise
        if echo:
            print(
                f"\nRun {record['id']} {record['status']}"
                + (f": {record['error']}" if record.get("error") else "")
                + f"  ({record['path']})",
                file=sys.stderr,
            )
        return record
    finally:
        cluster.close()


@training_stack("lf.cloud.cloud_jobs")
def cloud_jobs(address: str | None = None):
    """The cluster's layerflow jobs, newest first.

    Args:
        address: the cluster's job-submission address (default ``$RAY_API_SERVER_ADDRESS``).

    Returns:
        A DataFrame: job_id, run_id, status, script, start, end, message.

    Example:
        >>> lf.cloud.cloud_jobs("http://head:8265").head()
    """
    import pandas as pd

    cluster = RayCluster.connect(address)
    rows = [
        {
            "job_id": j.submission_id,
            "run_id": j.metadata.get("layerflow_run_id"),
            "status": str(j.status.value),
            "script": j.metadata.get("script"),
            "start": pd.to_datetime(j.start_time, unit="ms", utc=True) if j.start_time else None,
            "end": pd.to_datetime(j.end_time, unit="ms", utc=True) if j.end_time else None,
            "message": j.message,
        }
        for j in cluster.jobs()
    ]
    return pd.DataFrame(rows, columns=["job_id", "run_id", "status", "script", "start", "end", "message"])


def cloud_logs(job: str, address: str | None = None, runs_dir: str | os.PathLike[str] | None = None) -> str:
    """A job's output so far.

    Args:
        job: a Ray job id, or the local run it made (id, prefix, ``latest``).
        address: the cluster (default: the run's, else ``$RAY_API_SERVER_ADDRESS``).
        runs_dir: the local runs folder.

    Returns:
        The script's output, without layerflow's own marked lines.

    Example:
        >>> print(lf.cloud.cloud_logs("latest"))
    """
    return output_only(RemoteRun.attach(job, address, runs_dir).logs())


def cloud_collect(
    job: str, address: str | None = None, runs_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Files an ended job's run folder into the local runs folder (after a detached ``cloud_train``).

    Args:
        job: a Ray job id, or the local run it made (id, prefix, ``latest``).
        address: the cluster (default: the run's, else ``$RAY_API_SERVER_ADDRESS``).
        runs_dir: the local runs folder.

    Returns:
        The run's final record.

    Raises:
        ClusterError: the job is unknown, still running, or was not submitted by layerflow.

    Example:
        >>> lf.cloud.cloud_collect("raysubmit_XYZ", address="http://head:8265")["status"]
    """
    return RemoteRun.attach(job, address, runs_dir).collect()


def cloud_cancel(job: str, address: str | None = None, runs_dir: str | os.PathLike[str] | None = None) -> str:
    """Stops a running job; ``cloud_collect`` then files its run with status ``interrupted``.

    Args:
        job: a Ray job id, or the local run it made (id, prefix, ``latest``).
        address: the cluster (default: the run's, else ``$RAY_API_SERVER_ADDRESS``).
        runs_dir: the local runs folder.

    Returns:
        The job id asked to stop.

    Example:
        >>> lf.cloud.cloud_cancel("latest")
    """
    run = RemoteRun.attach(job, address, runs_dir)
    run.cancel()
    return run.job_id


__all__ = ["cloud_cancel", "cloud_collect", "cloud_jobs", "cloud_logs", "cloud_train"]
