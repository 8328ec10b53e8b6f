"""Exporting the model a tracked run saved, with the run's lineage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from layerflow.deploy.bundle import BundleError
from layerflow.deploy.export import export_model
from layerflow.runs.files import MODEL_DIR
from layerflow.runs.store import RunNotFoundError, RunStore

MODEL_SUFFIXES = (".keras", ".h5")


def _load_keras_model(path: Path) -> Any:
    from layerflow.backend import load_keras

    keras = load_keras()
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a damaged file
        raise BundleError(f"{path} could not be loaded as a Keras model ({type(error).__name__}: {error}).") from None


def export_source(source: str, out: str | os.PathLike[str], name: str | None = None, version: int | None = None,
                  runs_dir: str | os.PathLike[str] | None = None) -> Path:
    """Exports a model file, or the model saved by a run (``latest``, an id), into ``out``.

    Returns:
        The version folder written (``out/name/version``).
    """
    candidate = Path(source)
    lineage: dict[str, Any] = {}
    if candidate.is_file():
        if candidate.suffix not in MODEL_SUFFIXES:
            raise BundleError(f"{source} is not a saved Keras model; expected a {' or '.join(MODEL_SUFFIXES)} file.")
        model_file = candidate
    else:
        try:
            record = RunStore(runs_dir).record(source)
        except RunNotFoundError as error:
            raise BundleError(f"{source!r} is neither a model file nor a run: {error}") from None
        saved = sorted(p for p in (Path(record["path"]) / MODEL_DIR).glob("*") if p.suffix in MODEL_SUFFIXES)
        if not saved:
            raise BundleError(f"Run {record['id']} saved no Keras model (nothing in {record['path']}/{MODEL_DIR}); "
                              "save one in the script with model.save('name.keras').")
        model_file = saved[0]
        lineage = {"run_id": record["id"], "script": record.get("script"), "flags": record.get("flags", {}),
                   "source_hash": record.get("source_hash"), "git": record.get("git"),
                   "metrics": record.get("metrics", {}), "evaluation": record.get("evaluation", {})}
    lineage["model_file"] = model_file.name
    return export_model(_load_keras_model(model_file), out, name=name or model_file.stem, version=version,
                        lineage=lineage)
