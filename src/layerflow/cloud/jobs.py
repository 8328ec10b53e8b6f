"""``layerflow cloud train|jobs|logs|collect|cancel``: tracked runs as Ray jobs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from layerflow.runs.files import OUTPUT_FILE
from layerflow.runs.store import RunNotFoundError, RunStore
from layerflow.runs.training_run import check_script
from layerflow.tuning.job_log import JobLogDecoder, output_only
from layerflow.tuning.ray_jobs import ClusterError, RayCluster, RayJobs, RemoteRun, collect_job
from layerflow.tuning.trial import Trial


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
        cpus, gpus: resources the run takes on the cluster.
        requirements: a pip requirements file installed for the job.
        detach: return once the job is submitted.
        runs_dir: the local runs folder.
        command_line_flags: ``--flag name=value`` strings.
        args: further command-line arguments for the script.
        echo: print the job's output here as it comes.

    Returns:
        The run's record (status ``running`` when detached).

    Example:
        >>> run = lf.cloud.cloud_train("train.py", flags={"epochs": 30}, address="http://head:8265", gpus=1)
    """
    script_path = check_script(script)
    if detach and address == "local":
        raise ClusterError("--detach needs a cluster that outlives this command; --address local stops with it.")
    jobs = RayJobs(address, script_path, RunStore(runs_dir).path, args=args,
                   command_line_flags=command_line_flags, cpus=cpus, gpus=gpus, requirements=requirements,
                   echo_trial_output=echo)
    trial = Trial(1, dict(flags or {}))
    try:
        run, job_id = jobs.start(trial, {})
        if echo:
            print(f"Submitted Ray job {job_id} for run {run.run_id} to {jobs.cluster.address}", file=sys.stderr)
        if detach:
            return run.final_record()
        try:
            record = jobs.follow(trial, run, job_id, None)
        except KeyboardInterrupt:
            jobs.stop(trial, "interrupted", "interrupted (Ctrl-C): the Ray job was stopped")
            record = collect_job(jobs.cluster, run, job_id, JobLogDecoder(lambda _: None, lambda _: None),
                                 None, trial.handle["requested"])
            raise
        if echo:
            print(f"\nRun {record['id']} {record['status']}" + (f": {record['error']}" if record.get("error") else "")
                  + f"  ({record['path']})", file=sys.stderr)
        return record
    finally:
        jobs.close()


def _job_and_cluster(job: str, address: str | None, store: RunStore) -> tuple[str, RayCluster, str | None]:
    """A job id and its cluster, from a Ray job id or a local run reference (id, prefix, ``latest``)."""
    run_id = None
    try:
        record = store.record(job)
    except (RunNotFoundError, ValueError):
        record = None
    if record is not None:
        remote = record.get("remote") or {}
        if not remote.get("job_id"):
            raise ClusterError(f"Run {record['id']} did not run on Ray (it has no job id).")
        job, run_id = remote["job_id"], record["id"]
        address = address or remote.get("address")
    return job, RayCluster.connect(address), run_id


def cloud_jobs(address: str | None = None):
    """The cluster's layerflow jobs as a DataFrame: job id, run id, status, script, start, end, message."""
    import pandas as pd

    cluster = RayCluster.connect(address)
    rows = [
        {"job_id": j.submission_id, "run_id": j.metadata.get("layerflow_run_id"), "status": str(j.status.value),
         "script": j.metadata.get("script"), "start": pd.to_datetime(j.start_time, unit="ms", utc=True) if j.start_time else None,
         "end": pd.to_datetime(j.end_time, unit="ms", utc=True) if j.end_time else None, "message": j.message}
        for j in cluster.jobs()
    ]
    return pd.DataFrame(rows, columns=["job_id", "run_id", "status", "script", "start", "end", "message"])


def cloud_logs(job: str, address: str | None = None, runs_dir: str | os.PathLike[str] | None = None) -> str:
    """The job's output so far (a Ray job id or a local run reference)."""
    job_id, cluster, _ = _job_and_cluster(job, address, RunStore(runs_dir))
    return output_only(_logs(cluster, job_id))


def _logs(cluster: RayCluster, job_id: str) -> str:
    try:
        return cluster.logs(job_id)
    except Exception as error:  # noqa: BLE001 - the job client raises RuntimeError with the server's reason
        raise ClusterError(f"No logs for job {job_id!r} at {cluster.address}: {error}") from None


def cloud_collect(job: str, address: str | None = None, runs_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Files a finished job's run folder into the local runs dir (a detached ``cloud train``)."""
    store = RunStore(runs_dir)
    job_id, cluster, run_id = _job_and_cluster(job, address, store)
    try:
        info = cluster.job_info(job_id)
    except Exception as error:  # noqa: BLE001
        raise ClusterError(f"No job {job_id!r} at {cluster.address}: {error}") from None
    status = str(info.status.value)
    if status not in ("SUCCEEDED", "FAILED", "STOPPED"):
        raise ClusterError(f"Job {job_id} is still {status.lower()}; collect it once it has ended "
                           f"(`layerflow cloud logs {job}` shows its output so far).")
    run_id = run_id or (info.metadata or {}).get("layerflow_run_id")
    if not run_id:
        raise ClusterError(f"Job {job_id} was not submitted by layerflow (no run id in its metadata).")
    if (store.path / run_id).is_dir():
        run = RemoteRun.reopen(store, run_id)
        (run.run_dir / OUTPUT_FILE).unlink(missing_ok=True)
    else:  # collected on another machine than the one that submitted it
        run = RemoteRun(store, Path((info.metadata or {}).get("script") or "unknown.py"), {}, {},
                        cluster.address, run_id=run_id)
        run.submitted(job_id)
    decoder = JobLogDecoder(run.add_output, lambda epoch: None)
    decoder.feed(_logs(cluster, job_id))
    decoder.close()
    return collect_job(cluster, run, job_id, decoder, None)


def cloud_cancel(job: str, address: str | None = None, runs_dir: str | os.PathLike[str] | None = None) -> str:
    """Stops a running job; its run is filed with status ``interrupted`` by ``cloud_collect``."""
    job_id, cluster, _ = _job_and_cluster(job, address, RunStore(runs_dir))
    try:
        cluster.stop(job_id)
    except Exception as error:  # noqa: BLE001
        raise ClusterError(f"Cannot stop job {job_id!r} at {cluster.address}: {error}") from None
    return job_id
