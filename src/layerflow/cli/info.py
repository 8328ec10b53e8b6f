"""``layerflow info``: the Keras backend, library versions and devices."""

from __future__ import annotations

import json

import typer

app = typer.Typer()


@app.command()
def info() -> None:
    """Show the Keras backend, library versions and devices."""
    from layerflow import backend_info

    print(json.dumps(backend_info(), indent=2))
