"""The ``layerflow`` command line: one module per command group, each calling the public Python API.

Adding a command group: write ``layerflow/cli/<group>.py`` with a ``typer.Typer()`` named
``app`` holding its commands (top-level commands, or a named sub-group added with
``app.add_typer(..., name=...)``), then add the module's name to ``COMMAND_GROUPS`` below.
A command decides nothing itself: what it does is a public function, so that the command
line and Python always agree. Errors layerflow raises (``LayerflowError``) are printed as
one line (exit code 2); anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import importlib

import typer

from layerflow.cli.common import LayerflowGroup

# Each module under layerflow/cli/ whose ``app`` holds a group of commands, in help order.
COMMAND_GROUPS = ("runs", "tune", "cloud", "deploy", "models", "ui", "info")

app = typer.Typer(
    cls=LayerflowGroup,
    help="layerflow: tracked training runs, comparison, tuning and serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _group in COMMAND_GROUPS:
    app.add_typer(importlib.import_module(f"layerflow.cli.{_group}").app)


def main() -> None:
    """Console-script entry point (``layerflow``)."""
    app()


__all__ = ["COMMAND_GROUPS", "app", "main"]
