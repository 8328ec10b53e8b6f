"""The tuning page's study charts: optimisation history and flag importances, read from the runs folder.

``layerflow tune`` writes ``<runs>/tunings/<tuning_id>.json`` after its trials (from its Optuna
study); the page reads that file only, so the UI needs neither Optuna nor the tuning package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from layerflow.runs.files import TUNINGS_DIR


def tuning_charts(runs_dir: Path, tuning_id: str) -> dict[str, Any]:
    """The template context of the history and importance charts of tuning run ``tuning_id``.

    Args:
        runs_dir: the runs folder.
        tuning_id: the tuning run.

    Returns:
        ``{"study": None}`` when the tuning run has no study summary (an older run), else
        ``{"study": {"metric", "mode", "search", "history": [{"trial", "value", "best", "state", "run_id"}],
        "importances": [(flag, share)] largest first, "importance_note"}}``.

    Example:
        >>> tuning_charts(Path("runs"), "20261208T030000-abcd")["study"]["importances"]
        [('learning_rate', 0.81), ('units', 0.19)]
    """
    path = Path(runs_dir) / TUNINGS_DIR / f"{tuning_id}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"study": None}
    if not isinstance(data, dict) or not isinstance(data.get("history"), list):
        return {"study": None}
    importances = data.get("importances")
    if not isinstance(importances, dict):
        importances = {}
    history = [
        {k: h.get(k) for k in ("trial", "value", "best", "state", "run_id")}
        for h in data["history"]
        if isinstance(h, dict)
    ]
    return {
        "study": {
            "metric": data.get("metric"),
            "mode": data.get("mode"),
            "search": data.get("search"),
            "history": history,
            "importances": sorted(
                ((str(k), float(v)) for k, v in importances.items() if isinstance(v, (int, float))),
                key=lambda item: -item[1],
            ),
            "importance_note": data.get("importance_note"),
        }
    }
