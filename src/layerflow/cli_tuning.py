"""``layerflow tune`` and ``layerflow cloud ...``: trials and remote runs (part of the ``layerflow`` CLI)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from layerflow.cli import RunsDirOption, _fail, _parse_flags, _user_errors, app, console, errors

cloud_app = typer.Typer(help="Run scripts as tracked runs on a Ray cluster: train, jobs, logs, collect, cancel.",
                        no_args_is_help=True)
app.add_typer(cloud_app, name="cloud")

AddressOption = typer.Option(None, "--address", help="Ray job-submission address, e.g. http://head:8265 "
                             "(default $RAY_API_SERVER_ADDRESS); `local` starts a Ray cluster here.")


def _remote_errors():
    from layerflow.tuning import TuningError
    from layerflow.tuning.ray_jobs import ClusterError

    return (*_user_errors(), TuningError, ClusterError)


def _quiet_ray_logging() -> None:
    import logging

    for name in ("ray", "ray.dashboard", "ray.dashboard.modules.job.sdk", "ray.dashboard.modules.dashboard_sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _remote(action, *args, **kwargs):
    """Calls a tuning or cloud function with Ray's logging quiet; its user errors exit 2 with the message."""
    _quiet_ray_logging()
    try:
        return action(*args, **kwargs)
    except _remote_errors() as error:
        _fail(str(error))


JobArgument = typer.Argument(..., help="Ray job id, or the local run (id, prefix, latest).")


@app.command()
def tune(
    script: Path = typer.Argument(..., help="The training script; every trial is a tracked run of it."),
    grid: List[str] = typer.Option([], "--grid", help="name=v1,v2,... values of a flag to try (repeatable)."),
    range_: List[str] = typer.Option([], "--range", help="name=KIND:VALUES for random search: uniform:LOW,HIGH, "
                                     "loguniform:LOW,HIGH, int:LOW,HIGH or choice:A,B (repeatable; needs --trials)."),
    flag: List[str] = typer.Option([], "--flag", help="name=value shared by every trial (repeatable)."),
    sample: Optional[float] = typer.Option(None, "--sample", help="Run a random fraction (0, 1] of the grid."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Run N combinations (grid) or N draws (ranges)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the sample or the draws."),
    parallel: int = typer.Option(1, "--parallel", help="Trials running at once."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Metric ordering the summary (and watched by "
                                         "--early-stop), e.g. val_accuracy or eval_accuracy."),
    mode: Optional[str] = typer.Option(None, "--mode", help="max or min (default: min for losses, else max)."),
    early_stop: bool = typer.Option(False, "--early-stop", help="Stop poor trials early (ASHA on --metric)."),
    grace_epochs: int = typer.Option(1, "--grace-epochs", help="Epochs every trial runs before ASHA may stop it."),
    reduction_factor: float = typer.Option(3, "--reduction-factor", help="ASHA keeps 1/N of the trials at each rung."),
    address: Optional[str] = typer.Option(None, "--address", help="Run the trials on Ray: its job-submission "
                                          "address (http://head:8265) or `local` to start a Ray cluster here."),
    cpus: float = typer.Option(1, "--cpus", help="CPUs per trial on Ray."),
    gpus: float = typer.Option(0, "--gpus", help="GPUs per trial on Ray."),
    requirements: Optional[Path] = typer.Option(None, "--requirements", help="pip requirements file for trials on Ray."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Run SCRIPT once per combination of flag values, each as a tracked run; print them best first."""
    from layerflow.tuning import Asha, tuning_run
    from layerflow.tuning.space import parse_grid_option, parse_range_option

    _quiet_ray_logging()
    try:
        space = dict(parse_grid_option(item) for item in grid)
        for item in range_:
            name, spec = parse_range_option(item)
            if name in space:
                raise ValueError(f"Flag {name!r} is given by both --grid and --range; give it once.")
            space[name] = spec
        if not space:
            raise ValueError("Empty grid: nothing to tune; give at least one --grid name=v1,v2 (or --range).")
        scheduler = False
        if early_stop:
            if metric is None:
                raise ValueError("--early-stop needs the metric to watch, e.g. --metric val_loss.")
            from layerflow.tuning.tuning_run import infer_mode

            scheduler = Asha(metric.removeprefix("metric_"), mode or infer_mode(metric), grace_epochs, reduction_factor)
        tuning_run(script, flags=space, sample=sample, trials=trials, seed=seed, parallel=parallel, metric=metric,
                   mode=mode, early_stopping=scheduler, address=address, cpus=cpus, gpus=gpus,
                   requirements=requirements, runs_dir=runs_dir, fixed_flags=_parse_flags(flag))
    except _remote_errors() as error:
        _fail(str(error))
    except KeyboardInterrupt:
        raise typer.Exit(130)


@cloud_app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def cloud_train_command(
    ctx: typer.Context,
    script: Path = typer.Argument(..., help="The training script; its folder is uploaded to the cluster."),
    flag: List[str] = typer.Option([], "--flag", help="Flag override name=value (repeatable)."),
    address: Optional[str] = AddressOption,
    cpus: float = typer.Option(1, "--cpus", help="CPUs the run takes on the cluster."),
    gpus: float = typer.Option(0, "--gpus", help="GPUs the run takes on the cluster."),
    requirements: Optional[Path] = typer.Option(None, "--requirements", help="pip requirements file for the job."),
    detach: bool = typer.Option(False, "--detach", help="Return once submitted; `cloud collect JOB` files it later."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Run SCRIPT as a tracked run on a Ray cluster; stream its output and file the run here."""
    from layerflow.cloud import cloud_train

    command_line_flags = _remote(_parse_flags, flag)
    try:
        record = _remote(cloud_train, script, address=address, cpus=cpus, gpus=gpus, requirements=requirements,
                         detach=detach, runs_dir=runs_dir, command_line_flags=command_line_flags, args=ctx.args)
    except KeyboardInterrupt:
        raise typer.Exit(130)
    if detach:
        print(record["remote"]["job_id"])
    elif record["status"] != "completed":
        raise typer.Exit(1)


@cloud_app.command("jobs")
def cloud_jobs_command(address: Optional[str] = AddressOption) -> None:
    """List the cluster's layerflow jobs (newest first)."""
    from layerflow.cloud import cloud_jobs

    frame = _remote(cloud_jobs, address)
    if frame.empty:
        errors.print("No layerflow jobs on this cluster.")
        return
    console.print(frame.to_string(index=False), highlight=False, soft_wrap=True)


@cloud_app.command("logs")
def cloud_logs_command(
    job: str = JobArgument,
    address: Optional[str] = AddressOption,
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Print a job's output so far."""
    from layerflow.cloud import cloud_logs

    sys.stdout.write(_remote(cloud_logs, job, address, runs_dir))


@cloud_app.command("collect")
def cloud_collect_command(
    job: str = JobArgument,
    address: Optional[str] = AddressOption,
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """File a finished job's run folder into the local runs dir."""
    from layerflow.cloud import cloud_collect

    record = _remote(cloud_collect, job, address, runs_dir)
    errors.print(f"Run {record['id']} {record['status']}" + (f": {record['error']}" if record.get("error") else "")
                 + f"  ({record['path']})", highlight=False, soft_wrap=True)


@cloud_app.command("cancel")
def cloud_cancel_command(
    job: str = JobArgument,
    address: Optional[str] = AddressOption,
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Stop a running job (then `cloud collect` files it as interrupted)."""
    from layerflow.cloud import cloud_cancel

    job_id = _remote(cloud_cancel, job, address, runs_dir)
    errors.print(f"Asked the cluster to stop job {job_id}.")


__all__ = ["cloud_app", "tune"]
