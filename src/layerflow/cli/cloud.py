"""``layerflow cloud train | jobs | logs | collect | cancel``: tracked runs on a Ray cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from layerflow.cli.common import RunsDirOption, console, errors

app = typer.Typer()
cloud_app = typer.Typer(
    help="Run scripts as tracked runs on a Ray cluster: train, jobs, logs, collect, cancel.", no_args_is_help=True
)
app.add_typer(cloud_app, name="cloud")

AddressOption = typer.Option(
    None,
    "--address",
    help="Ray job-submission address, e.g. http://head:8265 "
    "(default $RAY_API_SERVER_ADDRESS); `local` starts a Ray cluster here.",
)
JobArgument = typer.Argument(..., help="Ray job id, or the local run (id, prefix, latest).")


@cloud_app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def cloud_train_command(
    ctx: typer.Context,
    script: Path = typer.Argument(..., help="The training script; its folder is uploaded to the cluster."),
    flag: list[str] = typer.Option([], "--flag", help="Flag override name=value (repeatable)."),
    address: str | None = AddressOption,
    cpus: float = typer.Option(1, "--cpus", help="CPUs the run takes on the cluster."),
    gpus: float = typer.Option(0, "--gpus", help="GPUs the run takes on the cluster."),
    requirements: Path | None = typer.Option(None, "--requirements", help="pip requirements file for the job."),
    detach: bool = typer.Option(False, "--detach", help="Return once submitted; `cloud collect JOB` files it later."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Run SCRIPT as a tracked run on a Ray cluster; stream its output and file the run here."""
    from layerflow.cloud import cloud_train
    from layerflow.flags import parse_flag_assignments

    record = cloud_train(
        script,
        address=address,
        cpus=cpus,
        gpus=gpus,
        requirements=requirements,
        detach=detach,
        runs_dir=runs_dir,
        command_line_flags=parse_flag_assignments(flag),
        args=ctx.args,
    )
    if detach:
        print(record["remote"]["job_id"])
    elif record["status"] != "completed":
        raise typer.Exit(1)


@cloud_app.command("jobs")
def cloud_jobs_command(address: str | None = AddressOption) -> None:
    """List the cluster's layerflow jobs (newest first)."""
    from layerflow.cloud import cloud_jobs

    frame = cloud_jobs(address)
    if frame.empty:
        errors.print("No layerflow jobs on this cluster.")
        return
    console.print(frame.to_string(index=False), highlight=False, soft_wrap=True)


@cloud_app.command("logs")
def cloud_logs_command(
    job: str = JobArgument,
    address: str | None = AddressOption,
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Print a job's output so far."""
    from layerflow.cloud import cloud_logs

    sys.stdout.write(cloud_logs(job, address, runs_dir))


@cloud_app.command("collect")
def cloud_collect_command(
    job: str = JobArgument,
    address: str | None = AddressOption,
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """File a finished job's run folder into the local runs dir."""
    from layerflow.cloud import cloud_collect

    record = cloud_collect(job, address, runs_dir)
    errors.print(
        f"Run {record['id']} {record['status']}"
        + (f": {record['error']}" if record.get("error") else "")
        + f"  ({record['path']})",
        highlight=False,
        soft_wrap=True,
    )


@cloud_app.command("cancel")
def cloud_cancel_command(
    job: str = JobArgument,
    address: str | None = AddressOption,
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Stop a running job (then `cloud collect` files it as interrupted)."""
    from layerflow.cloud import cloud_cancel

    errors.print(f"Asked the cluster to stop job {cloud_cancel(job, address, runs_dir)}.")


@cloud_app.command("unserve")
def cloud_unserve_command(
    address: str | None = AddressOption,
    name: str = typer.Option("layerflow", "--name", help="The Serve application's name."),
) -> None:
    """Remove the models that `layerflow serve --ray` deployed on a Ray cluster."""
    from layerflow.cloud import stop_serving

    removed = stop_serving(address, name=name)
    console.print(f"Removed Serve application {name!r}." if removed else f"No Serve application {name!r} was deployed.")
