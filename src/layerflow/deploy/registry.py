"""A small model registry over a model base directory: names, versions, labels and lineage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from layerflow.deploy.bundle import LINEAGE_FILE, versions
from layerflow.deploy.labels import read_labels
from layerflow.errors import MissingFileError


def list_models(base: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every model under ``base`` with its versions, their labels and where each came from.

    Args:
        base: the model base directory (``<base>/<name>/<version>/`` bundles).

    Returns:
        One dict per model, by name: ``{"name", "labels": {label: version}, "versions": [{"version",
        "labels": [...], "run_id", "metrics"}]}`` (``run_id`` and ``metrics`` from lineage.json,
        None and {} for a model exported without a run).

    Example:
        >>> lf.deploy.list_models("models")
        [{'name': 'mlp', 'labels': {'stable': 1}, 'versions': [{'version': 1, 'labels': ['stable'], ...}]}]
    """
    folder = Path(base)
    if not folder.is_dir():
        raise MissingFileError(
            f"Model base directory {folder} does not exist; export a model first (layerflow export RUN --out {folder})."
        )
    models = []
    for model_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = versions(model_dir)
        if not found:
            continue
        labels = read_labels(model_dir)
        rows = []
        for version in found:
            try:
                lineage = json.loads((model_dir / str(version) / LINEAGE_FILE).read_text())
            except (OSError, json.JSONDecodeError):
                lineage = {}
            rows.append(
                {
                    "version": version,
                    "labels": sorted(k for k, v in labels.items() if v == version),
                    "run_id": lineage.get("run_id"),
                    "metrics": lineage.get("metrics") or {},
                }
            )
        models.append({"name": model_dir.name, "labels": labels, "versions": rows})
    return models
