"""``layerflow models label | list``: version labels and the models under a base directory."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from layerflow.cli.common import console

app = typer.Typer()
models_app = typer.Typer(
    help="Exported models: label versions (stable, canary), list names, versions and lineage.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


@models_app.command("label")
def label_command(
    base: Path = typer.Argument(..., help="Model base directory (BASE/NAME/VERSION bundles)."),
    name: str = typer.Argument(..., help="The model's name."),
    version: int = typer.Argument(..., help="An exported version of it."),
    label: str = typer.Argument(..., help="The label: letters, digits and '_', not a number (stable, canary)."),
) -> None:
    """Point LABEL of model NAME at VERSION (atomic; a running server follows within a second)."""
    from layerflow.deploy import set_label

    written = set_label(base, name, version, label)
    console.print(f"{name}: {label} -> version {version} ({written})")


@models_app.command("list")
def list_command(
    base: Path = typer.Argument(..., help="Model base directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the models under BASE: versions, labels and lineage (run id, metrics)."""
    from rich.table import Table

    from layerflow.deploy import list_models

    models = list_models(base)
    if as_json:
        print(json.dumps(models, default=str))
        return
    table = Table("model", "version", "labels", "run", "metrics")
    for model in models:
        for row in model["versions"]:
            metrics = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(row["metrics"].items())[:4]
            )
            table.add_row(model["name"], str(row["version"]), ", ".join(row["labels"]), row["run_id"] or "", metrics)
    console.print(table if models else f"No exported model under {base}.")
