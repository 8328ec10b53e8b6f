"""``layerflow ui``: browse runs in the browser (the app is ``layerflow.ui``)."""

from __future__ import annotations

from pathlib import Path

import typer

from layerflow.cli.common import RunsDirOption

app = typer.Typer()


@app.command("ui")
def ui_command(
    runs_dir: Path | None = RunsDirOption,
    port: int = typer.Option(8600, "--port", help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback unless told otherwise)."),
    token: str | None = typer.Option(None, "--token", help="Require this token (open the page with ?token=T)."),
) -> None:
    """Browse runs in the browser: table, run pages, comparisons, tuning, live metrics of runs in progress."""
    from layerflow.ui import serve_ui

    serve_ui(runs_dir, port=port, host=host, token=token)
