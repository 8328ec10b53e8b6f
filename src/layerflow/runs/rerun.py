"""``lf.rerun`` / ``layerflow rerun RUN [--check]``: a recorded run run again from its source snapshot."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, TypeGuard

from layerflow.errors import InvalidValueError
from layerflow.runs import files as f
from layerflow.runs.store import RunStore
from layerflow.runs.training_run import training_run

RERUN_OF = "rerun_of"


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare_final_metrics(
    original: dict[str, Any], rerun: dict[str, Any], rel_tol: float = 1e-6, abs_tol: float = 1e-9
) -> dict[str, Any]:
    """The difference between two runs' final metrics and evaluation.

    Args:
        original: the first run's record.
        rerun: the second run's record.
        rel_tol: relative tolerance under which two values agree.
        abs_tol: absolute tolerance under which two values agree.

    Returns:
        ``{"matches": bool, "differences": [{"name", "original", "rerun", "difference", "agrees"}]}``
        over ``metric_*`` (last epoch) and ``eval_*`` values.

    Example:
        >>> compare_final_metrics(lf.run_info("latest~1"), lf.run_info("latest"))["matches"]
    """
    rows = []
    for prefix, key in (("metric_", "metrics"), ("eval_", "evaluation")):
        a, b = original.get(key) or {}, rerun.get(key) or {}
        for name in dict.fromkeys([*a, *b]):
            va, vb = a.get(name), b.get(name)
            difference = None
            if _is_number(va) and _is_number(vb):
                agrees = math.isclose(va, vb, rel_tol=rel_tol, abs_tol=abs_tol) or (math.isnan(va) and math.isnan(vb))
                difference = vb - va
            else:
                agrees = va == vb
            rows.append(
                {"name": f"{prefix}{name}", "original": va, "rerun": vb, "difference": difference, "agrees": agrees}
            )
    completed = original.get("status") == rerun.get("status") == "completed"
    return {
        "matches": completed and all(r["agrees"] for r in rows),
        "differences": rows,
        "statuses": [original.get("status"), rerun.get("status")],
    }


def rerun(
    run: str | os.PathLike[str] = "latest",
    check: bool = False,
    runs_dir: str | os.PathLike[str] | None = None,
    echo: bool = True,
    rel_tol: float = 1e-6,
) -> dict[str, Any]:
    """Runs a recorded run again from its source snapshot, flags and arguments, as a new run.

    The new run records ``rerun_of`` (the original's id) as a property. The script runs from a
    temporary copy of the original's ``source/`` folder, in this working directory, so that
    data it reads by relative path is found as before and the original run is never changed.

    Args:
        run: the run to repeat (id, id prefix, ``latest``, ``latest~N``).
        check: compare the final metrics and evaluation with the original's; the result is
            recorded in the new run as ``check`` (seeded runs on CPU should agree).
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).
        echo: print the script's output here too.
        rel_tol: with ``check``, the relative difference under which two values agree.

    Returns:
        The new run's record; with ``check``, its ``check`` entry says whether it ``matches``
        and lists the ``differences``.

    Raises:
        RunNotFoundError: no run matches ``run``.
        InvalidValueError: the run has no source snapshot of its script to run again.

    Example:
        >>> again = lf.rerun("latest", check=True)
        >>> again["check"]["matches"], again["properties"]["rerun_of"]
    """
    store = RunStore(runs_dir)
    original = store.record(run)
    source = Path(original["path"]) / f.SOURCE_DIR
    script_name = Path(str(original.get("script") or "")).name
    if not script_name or not (source / script_name).is_file():
        raise InvalidValueError(
            f"Run {original['id']} has no snapshot of its script {script_name or '(unknown)'!r} "
            f"in {source}; only runs recorded with their source can be run again."
        )
    with tempfile.TemporaryDirectory(prefix="layerflow-rerun-") as folder:
        copy = Path(folder) / "source"
        shutil.copytree(source, copy)
        record = training_run(
            copy / script_name,
            flags=original.get("flags") or {},
            runs_dir=store.path,
            args=original.get("args") or [],
            properties={RERUN_OF: original["id"]},
            echo=echo,
        )
    fields: dict[str, Any] = {"script": original.get("script")}
    if check:
        fields["check"] = compare_final_metrics(original, record, rel_tol=rel_tol)
    store.update_run(Path(record["path"]), **fields)
    final = store.final_record(Path(record["path"]))
    if echo and check:
        _print_check(original["id"], final["check"])
    return final


def _print_check(original_id: str, check: dict[str, Any]) -> None:
    import sys

    verdict = "agrees with" if check["matches"] else "differs from"
    lines = [f"Rerun {verdict} {original_id}:"]
    for row in check["differences"]:
        mark = "=" if row["agrees"] else "!"
        difference = "" if row["difference"] is None else f"  ({row['difference']:+.3g})"
        lines.append(f"  {mark} {row['name']}: {row['original']} -> {row['rerun']}{difference}")
    if check["statuses"][0] != check["statuses"][1] or check["statuses"][1] != "completed":
        lines.append(f"  statuses: {check['statuses'][0]} -> {check['statuses'][1]}")
    print("\n".join(lines), file=sys.stderr)
