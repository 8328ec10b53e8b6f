"""The public API is documented like Keras's: every name exported from layerflow says what it takes,
what it gives back, and shows an example; lf.runs exports only what users call."""

from __future__ import annotations

import inspect

import pytest

import layerflow as lf

# Keras is Keras's own module.
NOT_OURS = {"keras"}
PENDING_ELSEWHERE: set[str] = set()


def _missing_sections(obj) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if inspect.ismodule(obj):
        return [] if "Example:" in doc else ["Example:"]
    missing = [] if "Example:" in doc else ["Example:"]
    try:
        parameters = [p for p in inspect.signature(obj).parameters if p != "self"]
    except (TypeError, ValueError):
        parameters = []
    if (
        parameters
        and not inspect.isclass(obj)
        or (inspect.isclass(obj) and parameters and not issubclass(obj, BaseException))
    ):
        missing += [] if "Args:" in doc else ["Args:"]
    if inspect.isfunction(obj):
        missing += [] if "Returns:" in doc else ["Returns:"]
    return missing


@pytest.mark.parametrize("name", sorted(set(lf.__all__) - NOT_OURS))
def test_every_exported_name_is_documented(name):
    if name in PENDING_ELSEWHERE:
        pytest.xfail(f"{name}: documented by the feature-spec work")
    obj = getattr(lf, name)
    assert not _missing_sections(obj), f"lf.{name} lacks {_missing_sections(obj)} in its docstring"
    if inspect.isfunction(obj):
        hints = {p.name: p.annotation for p in inspect.signature(obj).parameters.values()}
        untyped = [p for p, a in hints.items() if a is inspect.Parameter.empty]
        assert not untyped, f"lf.{name}: parameters without type hints: {untyped}"


def test_every_exported_name_exists():
    for name in lf.__all__:
        assert getattr(lf, name) is not None


def test_runs_exports_only_what_users_call():
    import layerflow.runs as runs

    assert sorted(runs.__all__) == sorted(
        [
            "RunControl",
            "RunNotFoundError",
            "archived_runs",
            "clean_runs",
            "compare_runs",
            "copy_run",
            "current_run_dir",
            "is_tracked",
            "log_metrics",
            "ls_runs",
            "purge_runs",
            "rerun",
            "run_info",
            "run_properties",
            "training_run",
            "view_run",
            "write_run_data",
        ]
    )
    for internal in ("RunStore", "RunIndex", "read_record", "runs_dir"):
        assert not hasattr(runs, internal), internal
