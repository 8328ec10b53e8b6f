"""Every error layerflow raises is a LayerflowError with a builtin parent; the CLI prints only those as one line."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import layerflow
from layerflow.cli.common import LayerflowGroup
from layerflow.errors import InvalidValueError, LayerflowError
from tests.conftest import layerflow_cli

SOURCE = Path(layerflow.__file__).parent
# Raised where Python's protocols require the builtin itself (module __getattr__, an abstract method).
_PROTOCOL_RAISES = {("__init__.py", "AttributeError"), ("data/keras_feeding.py", "NotImplementedError")}
_BUILTIN_ERRORS = {
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
}


def _modules():
    for info in pkgutil.walk_packages([str(SOURCE)], prefix="layerflow."):
        if info.name.endswith("__main__") or info.name.startswith(
            ("layerflow.runs.launch", "layerflow.cloud.remote_entry")
        ):
            continue
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # an optional extra not installed here: its errors are checked where it is
            continue


def test_every_error_class_is_a_layerflow_error_with_a_builtin_parent():
    checked = []
    for module in _modules():
        for _, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and value.__name__ != "HttpError"
            ):  # the server's internal HTTP answer, never raised to a caller
                assert issubclass(value, LayerflowError) or value is LayerflowError, value
                if value is not LayerflowError:
                    builtin_parents = [
                        c
                        for c in value.__mro__[1:]
                        if c.__module__ == "builtins" and c is not object and c not in (Exception, BaseException)
                    ]
                    assert builtin_parents, f"{value} has no builtin parent such as ValueError"
                checked.append(value.__name__)
    assert {"FlagError", "RunNotFoundError", "TuningError", "ClusterError", "BundleError"} <= set(checked)


def test_no_bare_builtin_raise_in_the_source():
    offenders = []
    for path in SOURCE.rglob("*.py"):
        relative = path.relative_to(SOURCE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                name = node.exc.func.id
                if name in _BUILTIN_ERRORS and (relative, name) not in _PROTOCOL_RAISES:
                    offenders.append(f"{relative}:{node.lineno} raise {name}")
    assert not offenders, offenders


def test_the_base_is_exported_and_keeps_builtin_catches_working(runs_dir):
    assert layerflow.LayerflowError is LayerflowError
    with pytest.raises(ValueError, match="Cannot order by 'nope'") as caught:
        layerflow.ls_runs(order="nope")
    assert isinstance(caught.value, LayerflowError)
    with pytest.raises(LookupError) as missing:
        layerflow.run_info("latest")
    assert isinstance(missing.value, layerflow.RunNotFoundError)
    flags = layerflow.flags(argv=[], units=3)
    with pytest.raises(AttributeError, match="Unknown flag 'unit'"):
        flags.unit
    with pytest.raises(KeyError) as key:
        flags["unit"]
    assert isinstance(key.value, layerflow.FlagError) and str(key.value).startswith("Unknown flag 'unit'")
    assert flags.get("unit", 7) == 7


def _app_raising(error: BaseException) -> typer.Typer:
    app = typer.Typer(cls=LayerflowGroup)

    @app.command()
    def fail() -> None:
        raise error

    @app.command()
    def other() -> None:
        pass

    return app


def test_cli_prints_layerflow_errors_as_one_line_and_bugs_with_their_traceback():
    runner = CliRunner()
    result = runner.invoke(_app_raising(InvalidValueError("batch_size=0 must be positive.")), ["fail"])
    assert result.exit_code == 2 and result.exception is not None
    assert result.output.strip() == "Error: batch_size=0 must be positive."
    bug = runner.invoke(_app_raising(ValueError("a bug, not a user's mistake")), ["fail"])
    assert (
        bug.exit_code == 1 and isinstance(bug.exception, ValueError) and not isinstance(bug.exception, LayerflowError)
    )
    assert runner.invoke(_app_raising(KeyboardInterrupt()), ["fail"]).exit_code == 130


def test_cli_error_from_the_api_is_one_line(runs_dir):
    done = layerflow_cli("runs", "--order", "nope", cwd=runs_dir.parent)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("Error: Cannot order by 'nope'") and "Traceback" not in done.stderr
    done = layerflow_cli("runs", "clean", "no-such-run", cwd=runs_dir.parent)
    assert done.returncode == 2 and "No run 'no-such-run'" in done.stderr and "Traceback" not in done.stderr
