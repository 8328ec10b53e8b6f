"""The ``layerflow`` command line (typer): every command calls the public Python API."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="layerflow: tracked training runs, comparison, tuning and serving.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
runs_app = typer.Typer(help="List runs; `runs clean` archives runs, `runs purge` deletes archived ones.")
app.add_typer(runs_app, name="runs")

console = Console()
errors = Console(stderr=True)

RunsDirOption = typer.Option(None, "--runs-dir", help="Runs folder (default $LAYERFLOW_RUNS_DIR or ./runs).")


def _fail(message: str, code: int = 2) -> None:
    errors.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _user_errors():
    from layerflow.flags import FlagError
    from layerflow.runs import RunNotFoundError

    return (FlagError, RunNotFoundError, FileNotFoundError, ValueError, TypeError)


def _parse_flags(items: list[str]) -> dict[str, str]:
    from layerflow.flags.parsing import parse_assignment

    return dict(parse_assignment(item) for item in items)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    script: Path = typer.Argument(..., help="The Python script to run as a tracked run."),
    flag: List[str] = typer.Option([], "--flag", help="Flag override name=value (repeatable)."),
    runs_dir: Optional[Path] = RunsDirOption,
    view: bool = typer.Option(False, "--view", help="Open the run's live page in the browser (starts `layerflow ui`)."),
    view_port: int = typer.Option(8600, "--view-port", help="With --view: the UI's port."),
) -> None:
    """Run SCRIPT as a tracked run: source, flags, output, metrics and model are recorded.

    Arguments after the script (or after --) are passed to it.
    """
    from layerflow.runs import training_run

    try:
        run_id = _open_live_page(runs_dir, view_port) if view else None
        record = training_run(script, runs_dir=runs_dir, args=ctx.args, command_line_flags=_parse_flags(flag),
                              run_id=run_id)
    except _user_errors() as error:
        _fail(str(error))
    except KeyboardInterrupt:
        raise typer.Exit(130)
    if record["status"] != "completed":
        raise typer.Exit(record.get("exit_code") or 1)


def _open_live_page(runs_dir: Optional[Path], port: int) -> str:
    from layerflow.ui import new_run_id, view_live

    run_id = new_run_id()
    errors.print(f"Live page: {view_live(run_id, runs_dir, port=port)}")
    return run_id


@app.command("ui")
def ui_command(
    runs_dir: Optional[Path] = RunsDirOption,
    port: int = typer.Option(8600, "--port", help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback unless told otherwise)."),
    token: Optional[str] = typer.Option(None, "--token", help="Require this token (open the page with ?token=T)."),
) -> None:
    """Browse runs in the browser: table, run pages, comparisons, tuning, live metrics of runs in progress."""
    from layerflow.ui import UIError, serve_ui

    try:
        serve_ui(runs_dir, port=port, host=host, token=token)
    except UIError as error:
        _fail(str(error))


def _format(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_table(frame) -> None:
    table = Table(header_style="bold")
    shown = frame.drop(columns=["error", "end"], errors="ignore").dropna(axis=1, how="all")
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
    order: Optional[str] = typer.Option(None, "--order", help="Column to sort by, e.g. eval_accuracy."),
    desc: bool = typer.Option(False, "--desc", help="Sort --order from the largest value down."),
    latest: Optional[int] = typer.Option(None, "--latest", help="Only the N most recent runs."),
    filter: Optional[str] = typer.Option(None, "--filter", help="pandas query, e.g. \"flag_dropout > 0.2\"."),
    as_json: bool = typer.Option(False, "--json", help="Print the run records as JSON."),
    reindex: bool = typer.Option(False, "--reindex", help="Rebuild index.sqlite from the run folders first."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """List runs as a table (newest first)."""
    if ctx.invoked_subcommand is not None:
        return
    from layerflow.runs import RunStore, ls_runs

    store = RunStore(runs_dir)
    if reindex:
        count = store.index.rebuild()
        errors.print(f"Reindexed {count} runs in {store.path}.")
    try:
        frame = ls_runs(runs_dir, order=order, decreasing=desc, latest_n=latest, filter=filter)
    except _user_errors() as error:
        _fail(str(error))
    if as_json:
        by_id = {r["id"]: r for r in store.records()}
        print(json.dumps([by_id[i] for i in frame["id"]], indent=2, default=str))
    elif frame.empty:
        errors.print(f"No runs in {store.path}.")
    else:
        _print_table(frame)


@runs_app.command("clean")
def runs_clean(
    runs: List[str] = typer.Argument(None, help="Runs to archive (ids, prefixes, latest, latest~N)."),
    failed: bool = typer.Option(False, "--failed", help="Archive every run that did not complete."),
    all_runs: bool = typer.Option(False, "--all", help="Archive every run."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Archive runs (moved to RUNS_DIR/_archive; `runs purge` deletes them)."""
    from layerflow.runs import RunStore

    store = RunStore(runs_dir)
    if not (runs or failed or all_runs):
        _fail("Say which runs to archive: run ids, --failed or --all.")
    try:
        chosen = {store.resolve(ref).name for ref in runs or []}
    except _user_errors() as error:
        _fail(str(error))
    records = store.records()
    chosen |= {r["id"] for r in records if all_runs or (failed and r.get("status") not in ("completed", "running"))}
    moved = store.archive(sorted(chosen))
    console.print(f"Archived {len(moved)} run(s) into {store.archive_path}.")


@runs_app.command("purge")
def runs_purge(
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Delete archived runs for good."""
    from layerflow.runs import RunStore

    store = RunStore(runs_dir)
    archived = store.archived()
    if not archived:
        console.print("No archived runs to purge.")
        return
    if not yes and not typer.confirm(f"Delete {len(archived)} archived run(s) for good?"):
        raise typer.Exit(1)
    console.print(f"Deleted {len(store.purge())} archived run(s).")


@app.command()
def show(
    run: str = typer.Argument("latest", help="Run id, id prefix, latest or latest~N."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the HTML report here instead of opening it."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Write (or open) the HTML report of a run."""
    from layerflow.runs import view_run

    try:
        path = view_run(run, runs_dir=runs_dir, out=out)
    except _user_errors() as error:
        _fail(str(error))
    console.print(f"Report: {path}")


@app.command()
def compare(
    run_a: str = typer.Argument("latest~1", help="First run."),
    run_b: str = typer.Argument("latest", help="Second run."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the HTML comparison here instead of opening it."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Compare two runs side by side: metric curves, flags and a source diff."""
    from layerflow.runs import compare_runs

    try:
        path = compare_runs(run_a, run_b, runs_dir=runs_dir, out=out)
    except _user_errors() as error:
        _fail(str(error))
    console.print(f"Comparison: {path}")


@app.command("export")
def export_command(
    source: str = typer.Argument(..., help="A run (id, latest, latest~N) or a saved .keras model file."),
    out: Path = typer.Option(..., "--out", help="Model base directory; the bundle goes to OUT/NAME/VERSION."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name (default: the saved model's file name)."),
    version: Optional[int] = typer.Option(None, "--version", help="Version number (default: the next free one)."),
    format: str = typer.Option("onnx", "--format", help="onnx: a bundle for serving; web: a static page (OUT/index.html)."),
    sample: Optional[Path] = typer.Option(None, "--sample", help="With --format web: JSON inputs the page predicts on load."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Export a model to an ONNX bundle (model.onnx, signature.json, lineage.json) or a web page."""
    import tempfile

    from layerflow.deploy import BundleError
    from layerflow.deploy.from_run import export_source

    if format not in ("onnx", "web"):
        _fail(f"--format {format!r} is not known; expected onnx or web.")
    try:
        if format == "onnx":
            console.print(f"Exported to {export_source(source, out, name=name, version=version, runs_dir=runs_dir)}")
            return
        from layerflow.deploy.web import build_web_page

        inputs = json.loads(sample.read_text()) if sample else None
        with tempfile.TemporaryDirectory() as staging:
            bundle = export_source(source, staging, name=name, version=version, runs_dir=runs_dir)
            page = build_web_page(bundle, out, sample=inputs)
    except (BundleError, json.JSONDecodeError, OSError, *_user_errors()) as error:
        _fail(str(error))
    console.print(f"Web page: {page} (serve the folder over HTTP, e.g. python -m http.server -d {out})")


@app.command()
def serve(
    model_dir: Path = typer.Argument(..., help="Model base directory (MODEL_DIR/NAME/VERSION bundles)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback unless told otherwise)."),
    port: int = typer.Option(8501, "--port", help="TCP port."),
    token: Optional[str] = typer.Option(None, "--token", help="Require 'Authorization: Bearer TOKEN' (not on health)."),
    max_batch_size: int = typer.Option(0, "--max-batch-size", help="Batch concurrent requests up to N rows (0: off)."),
    batch_delay_ms: float = typer.Option(2.0, "--batch-delay-ms", help="Longest wait for a batch to fill."),
    intra_op_threads: int = typer.Option(0, "--intra-op-threads", help="onnxruntime threads per call (0: default)."),
    inter_op_threads: int = typer.Option(0, "--inter-op-threads", help="onnxruntime threads across nodes (0: default)."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
) -> None:
    """Serve every exported model under MODEL_DIR over REST (TF Serving and KServe v2 protocols)."""
    try:
        from layerflow.deploy.server import serve as run_server
    except ImportError as error:
        _fail(f"Serving needs the serve extra: pip install 'layerflow[serve]' ({error}).")
    if not model_dir.is_dir():
        _fail(f"Model directory {model_dir} does not exist; export a model first: layerflow export RUN --out {model_dir}")
    if max_batch_size < 0 or batch_delay_ms < 0:
        _fail("--max-batch-size and --batch-delay-ms must not be negative.")
    run_server(str(model_dir), host=host, port=port, token=token, max_batch_size=max_batch_size,
               batch_delay_ms=batch_delay_ms, intra_op_threads=intra_op_threads,
               inter_op_threads=inter_op_threads, access_log=access_log)


@app.command()
def predict(
    target: str = typer.Argument(..., help="A bundle folder, a model base directory or a server URL."),
    input_file: Path = typer.Option(..., "--input", help="JSON file: {\"inputs\": ...} or {\"instances\": ...} or an array."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name (needed with several models or a URL)."),
    version: Optional[int] = typer.Option(None, "--version", help="Version (default: the latest)."),
    token: Optional[str] = typer.Option(None, "--token", help="Bearer token of the server."),
) -> None:
    """Predict with an exported model, local or served; prints the outputs as JSON."""
    from layerflow.deploy import BundleError
    from layerflow.deploy import predict as run_predict

    try:
        data = json.loads(input_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        _fail(f"Cannot read the inputs from {input_file}: {error}")
    if isinstance(data, dict) and ("inputs" in data or "instances" in data):
        data = data.get("inputs", data.get("instances"))
    try:
        outputs = run_predict(target, data, name=name, version=version, token=token)
    except (BundleError, *_user_errors()) as error:
        _fail(str(error))
    print(json.dumps(outputs))


@app.command()
def info() -> None:
    """Show the Keras backend, library versions and devices."""
    from layerflow.backend import backend_info

    try:
        print(json.dumps(backend_info(), indent=2))
    except (ImportError, ValueError, RuntimeError) as error:
        _fail(str(error))


import layerflow.cli_tuning  # noqa: E402,F401 - registers `tune` and `cloud` on the app


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # python -m layerflow.cli: run the imported module's app, which has every command
    from layerflow.cli import main as _main

    sys.exit(_main())
