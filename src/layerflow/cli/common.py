"""What every command group shares: consoles, common options, and the one error policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from layerflow.errors import InvalidValueError, LayerflowError, MissingFileError

console = Console()
errors = Console(stderr=True)

RunsDirOption = typer.Option(None, "--runs-dir", help="Runs folder (default $LAYERFLOW_RUNS_DIR or ./runs).")

# Exit codes: 2 for an error in what was asked (as click uses for usage errors), 130 for Ctrl-C.
USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130


def print_error(message: str) -> None:
    """Prints ``Error: message`` on stderr as one line."""
    errors.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)


class LayerflowGroup(TyperGroup):
    """The root command group: a ``LayerflowError`` becomes one line and exit code 2, Ctrl-C exit code 130.

    Any other exception propagates with its traceback: it is a bug, not a user's mistake.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LayerflowError as error:
            print_error(str(error))
            raise typer.Exit(USER_ERROR_EXIT) from None
        except KeyboardInterrupt:
            raise typer.Exit(INTERRUPTED_EXIT) from None


def read_json_file(path: Path, what: str) -> Any:
    """The JSON content of a file named on the command line (``what`` says what it holds, e.g.
    "the inputs"), or a LayerflowError saying why it cannot be read."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MissingFileError(f"Cannot read {what} from {path}: the file does not exist.") from None
    except OSError as error:
        raise InvalidValueError(f"Cannot read {what} from {path}: {error.strerror or error}.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidValueError(
            f"Cannot read {what} from {path}: not valid JSON ({error.msg} at line {error.lineno})."
        ) from None
