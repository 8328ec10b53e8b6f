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
# A saved model that is not one Keras file (a fitted estimator: its model, spec and head) holds
# this file, naming the function that loads it: {"loader": "package.module:function"}. The
# loaded object is exported through its export_parts(), so deploy imports no estimator code.
SAVED_MODEL_FILE = "layerflow_model.json"


def _saved_models(folder: Path) -> list[Path]:
    """Folders under ``folder`` (itself included) that hold a ``layerflow_model.json``."""
    return sorted({marker.parent for marker in [*folder.glob(SAVED_MODEL_FILE), *folder.glob(f"*/{SAVED_MODEL_FILE}")]})


def load_saved_model(folder: Path) -> Any:
    """Loads a saved model folder with the loader its ``layerflow_model.json`` names.

    Args:
        folder: a folder holding ``layerflow_model.json`` (``{"loader": "module:function"}``).

    Returns:
        What ``function(folder)`` returns (e.g. a fitted estimator with ``export_parts()``).

    Example:
        >>> estimator = load_saved_model(Path("runs/<id>/model/income"))
    """
    import importlib
    import json

    try:
        loader = json.loads((folder / SAVED_MODEL_FILE).read_text())["loader"]
        module_name, function_name = loader.split(":")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise BundleError(f"{folder / SAVED_MODEL_FILE} must be JSON like "
                          '{"loader": "package.module:function"}.') from None
    try:
        load = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise BundleError(f"{folder}: its loader {loader!r} cannot be imported ({error}).") from None
    return load(folder)


def _load_keras_model(path: Path) -> Any:
    from layerflow.backend import load_keras

    keras = load_keras()
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a damaged file
        raise BundleError(f"{path} could not be loaded as a Keras model ({type(error).__name__}: {error}).") from None


def export_source(source: str, out: str | os.PathLike[str], name: str | None = None, version: int | None = None,
                  runs_dir: str | os.PathLike[str] | None = None) -> Path:
    """Exports a model file or saved model folder, or the model saved by a run (``latest``, an id), into ``out``.

    A run's model is a Keras file (``.keras``/``.h5``) or a folder holding ``layerflow_model.json``
    (a fitted estimator saved with the loader that reads it back).

    Returns:
        The version folder written (``out/name/version``).
    """
    candidate = Path(source)
    lineage: dict[str, Any] = {}
    if candidate.is_dir() and (candidate / SAVED_MODEL_FILE).is_file():
        return export_model(load_saved_model(candidate), out, name=name or candidate.name, version=version,
                            lineage={"model_file": candidate.name})
    if candidate.is_file():
        if candidate.suffix not in MODEL_SUFFIXES:
            raise BundleError(f"{source} is not a saved Keras model; expected a {' or '.join(MODEL_SUFFIXES)} file.")
        model_file = candidate
    else:
        try:
            record = RunStore(runs_dir).record(source)
        except RunNotFoundError as error:
            raise BundleError(f"{source!r} is neither a model file nor a run: {error}") from None
        lineage = {"run_id": record["id"], "script": record.get("script"), "flags": record.get("flags", {}),
                   "source_hash": record.get("source_hash"), "git": record.get("git"),
                   "metrics": record.get("metrics", {}), "evaluation": record.get("evaluation", {})}
        saved = sorted(p for p in (Path(record["path"]) / MODEL_DIR).glob("*") if p.suffix in MODEL_SUFFIXES)
        folders = _saved_models(Path(record["path"]) / MODEL_DIR)
        if folders and not saved:
            lineage["model_file"] = folders[0].name
            return export_model(load_saved_model(folders[0]), out, name=name or folders[0].name, version=version,
                                lineage=lineage)
        if not saved:
            raise BundleError(f"Run {record['id']} saved no Keras model or saved model folder (nothing in {record['path']}/{MODEL_DIR}); "
                              "save one in the script with model.save('name.keras').")
        model_file = saved[0]
    lineage["model_file"] = model_file.name
    return export_model(_load_keras_model(model_file), out, name=name or model_file.stem, version=version,
                        lineage=lineage)
