"""``layerflow run | runs [clean|purge] | show | compare``: tracked runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from layerflow.cli.common import RunsDirOption, console, errors

app = typer.Typer()
runs_app = typer.Typer(help="List runs; `runs clean` archives runs, `runs purge` deletes archived ones.")
app.add_typer(runs_app, name="runs")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    script: Path = typer.Argument(..., help="The Python script to run as a tracked run."),
    flag: list[str] = typer.Option([], "--flag", help="Flag override name=value (repeatable)."),
    flags_file: Path | None = typer.Option(
        None,
        "--flags-file",
        help="YAML file of flag values (name: value), e.g. a tuning run's best; --flag overrides it.",
    ),
    config: str | None = typer.Option(
        None, "--config", help="Profile of the script's flags.yml to use, over its `default` profile."
    ),
    runs_dir: Path | None = RunsDirOption,
    view: bool = typer.Option(False, "--view", help="Open the run's live page in the browser (starts `layerflow ui`)."),
    view_port: int = typer.Option(8600, "--view-port", help="With --view: the UI's port."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        help="Train data-parallel on N Ray Train workers "
        "(a local Ray cluster unless $RAY_ADDRESS names one); batch_size is the global batch.",
    ),
    cpus_per_worker: float = typer.Option(1, "--cpus-per-worker", help="With --workers: CPUs each worker reserves."),
    gpus_per_worker: float = typer.Option(0, "--gpus-per-worker", help="With --workers: GPUs each worker reserves."),
) -> None:
    """Run SCRIPT as a tracked run: source, flags, output, metrics and model are recorded.

    Arguments after the script (or after --) are passed to it.
    """
    from layerflow.flags import parse_flag_assignments
    from layerflow.runs import training_run

    run_id = None
    if view:
        from layerflow.ui import new_run_id, view_live

        run_id = new_run_id()
        errors.print(f"Live page: {view_live(run_id, runs_dir, port=view_port)}")
    record = training_run(
        script,
        flags=flags_file,
        runs_dir=runs_dir,
        args=ctx.args,
        config=config,
        command_line_flags=parse_flag_assignments(flag),
        run_id=run_id,
        workers=workers,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker,
    )
    if record["status"] != "completed":
        raise typer.Exit(record.get("exit_code") or 1)


@app.command()
def rerun(
    run: str = typer.Argument("latest", help="Run id, id prefix, latest or latest~N."),
    check: bool = typer.Option(
        False, "--check", help="Compare the final metrics with the original's; exit 1 if they differ."
    ),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Run a recorded run again from its source snapshot and flags, as a new run linked to it."""
    from layerflow.runs import rerun as rerun_run

    record = rerun_run(run, check=check, runs_dir=runs_dir)
    if record["status"] != "completed" or (check and not record["check"]["matches"]):
        raise typer.Exit(1)


def _format(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_table(frame) -> None:
    table = Table(header_style="bold")
    shown = frame.drop(columns=["error", "end", "run_dir"], errors="ignore").dropna(axis=1, how="all")
    shown["script"] = shown["script"].map(lambda s: Path(str(s)).name)
    shown["start"] = shown["start"].map(lambda s: str(s)[:19].replace("T", " "))
    for column in shown.columns:
        table.add_column(column, no_wrap=column in ("id", "start"))
    for row in shown.itertuples(index=False):
        table.add_row(*(_format(v) for v in row))
    # Off a terminal (a pipe, a file) print at the table's natural width instead of 80 columns.
    (console if console.is_terminal else Console(width=100_000)).print(table)


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    order: str | None = typer.Option(None, "--order", help="Column to sort by, e.g. eval_accuracy."),
    desc: bool = typer.Option(False, "--desc", help="Sort --order from the largest value down."),
    latest: int | None = typer.Option(None, "--latest", help="Only the N most recent runs."),
    filter: str | None = typer.Option(None, "--filter", help='pandas query, e.g. "flag_dropout > 0.2".'),
    as_json: bool = typer.Option(False, "--json", help="Print the run records as JSON."),
    reindex: bool = typer.Option(False, "--reindex", help="Rebuild index.sqlite from the run folders first."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """List runs as a table (newest first)."""
    if ctx.invoked_subcommand is not None:
        return
    from layerflow.runs import ls_runs, run_info

    frame = ls_runs(runs_dir, order=order, decreasing=desc, latest_n=latest, filter=filter, reindex=reindex)
    if reindex:
        errors.print(f"Reindexed {frame.attrs['reindexed']} runs in {frame.attrs['runs_dir']}.")
    if as_json:
        print(json.dumps([run_info(run_id, runs_dir) for run_id in frame["id"]], indent=2, default=str))
    elif frame.empty:
        errors.print(f"No runs in {frame.attrs['runs_dir']}.")
    else:
        _print_table(frame)


@runs_app.command("clean")
def runs_clean(
    runs: list[str] = typer.Argument(None, help="Runs to archive (ids, prefixes, latest, latest~N)."),
    failed: bool = typer.Option(False, "--failed", help="Archive every run that did not complete."),
    all_runs: bool = typer.Option(False, "--all", help="Archive every run."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Archive runs (moved to RUNS_DIR/_archive; `runs purge` deletes them)."""
    from layerflow.runs import clean_runs

    moved = clean_runs(runs or None, failed=failed, all=all_runs, runs_dir=runs_dir)
    console.print(f"Archived {len(moved)} run(s); `layerflow runs purge` deletes them for good.")


@runs_app.command("purge")
def runs_purge(
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Delete archived runs for good."""
    from layerflow.runs import archived_runs, purge_runs

    archived = archived_runs(runs_dir)
    if not archived:
        console.print("No archived runs to purge.")
        return
    if not yes and not typer.confirm(f"Delete {len(archived)} archived run(s) for good?"):
        raise typer.Exit(1)
    console.print(f"Deleted {len(purge_runs(runs_dir))} archived run(s).")


@runs_app.command("copy")
def runs_copy(
    run: str = typer.Argument(..., help="Run id, id prefix, latest or latest~N."),
    dest: Path = typer.Argument(Path("."), help="Folder to copy the run into (as DEST/RUN_ID)."),
    rename: str | None = typer.Option(None, "--rename", help="Name of the copy's folder (default: the run id)."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Copy a run's folder (record, output, source, model, data...) into DEST."""
    from layerflow.runs import copy_run

    console.print(f"Copied to {copy_run(run, dest, rename=rename, runs_dir=runs_dir)}")


@app.command()
def show(
    run: str = typer.Argument("latest", help="Run id, id prefix, latest or latest~N."),
    out: Path | None = typer.Option(None, "--out", help="Write the HTML report here instead of opening it."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Write (or open) the HTML report of a run."""
    from layerflow.runs import view_run

    console.print(f"Report: {view_run(run, runs_dir=runs_dir, out=out)}")


@app.command()
def compare(
    run_a: str = typer.Argument("latest~1", help="First run."),
    run_b: str = typer.Argument("latest", help="Second run."),
    out: Path | None = typer.Option(None, "--out", help="Write the HTML comparison here instead of opening it."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Compare two runs side by side: metric curves, flags and a source diff."""
    from layerflow.runs import compare_runs

    console.print(f"Comparison: {compare_runs(run_a, run_b, runs_dir=runs_dir, out=out)}")
