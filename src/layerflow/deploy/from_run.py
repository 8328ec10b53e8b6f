"""Exporting the model a tracked run saved, with the run's lineage (``lf.export_run``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from layerflow.backend import training_stack
from layerflow.deploy.bundle import BundleError
from layerflow.deploy.export import export_model
from layerflow.deploy.web import build_web_page
from layerflow.errors import InvalidTypeError, InvalidValueError, LayerflowError
from layerflow.runs.files import MODEL_DIR
from layerflow.runs.store import RunNotFoundError, RunStore

MODEL_SUFFIXES = (".keras", ".h5")
EXPORT_FORMATS = ("onnx", "web")
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
        raise BundleError(
            f'{folder / SAVED_MODEL_FILE} must be JSON like {{"loader": "package.module:function"}}.'
        ) from None
    try:
        with training_stack(f"Loading the saved model {folder}"):
            load = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        if isinstance(error, LayerflowError):  # the training stack is missing: the message says what to install
            raise
        raise BundleError(f"{folder}: its loader {loader!r} cannot be imported ({error}).") from None
    return load(folder)


def _load_keras_model(path: Path) -> Any:
    from layerflow.backend import load_keras

    keras = load_keras()
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a damaged file
        raise BundleError(f"{path} could not be loaded as a Keras model ({type(error).__name__}: {error}).") from None


def export_run(
    run: str | os.PathLike[str],
    out: str | os.PathLike[str],
    name: str | None = None,
    version: int | None = None,
    format: str = "onnx",
    sample: Any = None,
    runs_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Exports the model a tracked run saved (or a saved model file or folder) for serving.

    ``format="onnx"`` writes an export bundle, ``out/<name>/<version>/`` (``model.onnx``,
    ``signature.json`` and ``lineage.json`` with the run's id, flags and source hash), which
    ``lf.serve``, ``lf.predict`` and TF Serving-style tools read. ``format="web"`` writes a
    static page, ``out/index.html``, that runs the model in the browser (onnxruntime-web).
    A run's model is the Keras file (``.keras``/``.h5``) the script saved, or a fitted
    estimator's saved folder.

    Args:
        run: a run id, ``"latest"``, ``"latest~N"``, a ``.keras``/``.h5`` file, or a saved model folder.
        out: the model base directory (onnx) or the page's folder (web).
        name: the model's name (default: the saved model's file or folder name).
        version: the version number (default: the next free one).
        format: ``"onnx"`` (a bundle for serving) or ``"web"`` (a static page).
        sample: with ``format="web"``, inputs the page shows and predicts when it opens
            (JSON-serialisable: nested lists, or row dicts for a raw-feature model).
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).

    Returns:
        The bundle's version folder (``out/<name>/<version>``), or for ``format="web"`` the
        page (``out/index.html``).

    Example:
        >>> lf.export_run("latest", "models")                        # models/<name>/1
        >>> lf.export_run("latest", "site", format="web", sample=x_test[:3].tolist())
    """
    if not isinstance(run, (str, os.PathLike)) or not str(run):
        raise InvalidTypeError(f"run must be a run id, 'latest' or a saved model path; got {run!r}.")
    if not isinstance(out, (str, os.PathLike)) or not str(out):
        raise InvalidTypeError(f"out must be a folder path; got {out!r}.")
    if format not in EXPORT_FORMATS:
        raise InvalidValueError(f"Export format {format!r} is not known; expected one of {', '.join(EXPORT_FORMATS)}.")
    if format == "onnx":
        if sample is not None:
            raise InvalidValueError("A sample input is shown by the web page; it needs the format 'web', not 'onnx'.")
        return export_source(str(run), out, name=name, version=version, runs_dir=runs_dir)
    with tempfile.TemporaryDirectory() as staging:  # the page holds its own copy of the model
        bundle = export_source(str(run), staging, name=name, version=version, runs_dir=runs_dir)
        return build_web_page(bundle, out, sample=sample)


def export_source(
    source: str,
    out: str | os.PathLike[str],
    name: str | None = None,
    version: int | None = None,
    runs_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Exports a model file or saved model folder, or the model saved by a run (``latest``, an id), into ``out``.

    A run's model is a Keras file (``.keras``/``.h5``) or a folder holding ``layerflow_model.json``
    (a fitted estimator saved with the loader that reads it back).

    Returns:
        The version folder written (``out/name/version``).
    """
    candidate = Path(source)
    lineage: dict[str, Any] = {}
    if candidate.is_dir() and (candidate / SAVED_MODEL_FILE).is_file():
        return export_model(
            load_saved_model(candidate),
            out,
            name=name or candidate.name,
            version=version,
            lineage={"model_file": candidate.name},
        )
    if candidate.is_file():
        if candidate.suffix not in MODEL_SUFFIXES:
            raise BundleError(f"{source} is not a saved Keras model; expected a {' or '.join(MODEL_SUFFIXES)} file.")
        model_file = candidate
    else:
        try:
            record = RunStore(runs_dir).record(source)
        except RunNotFoundError as error:
            raise BundleError(f"{source!r} is neither a model file nor a run: {error}") from None
        lineage = {
            "run_id": record["id"],
            "script": record.get("script"),
            "flags": record.get("flags", {}),
            "source_hash": record.get("source_hash"),
            "git": record.get("git"),
            "metrics": record.get("metrics", {}),
            "evaluation": record.get("evaluation", {}),
        }
        saved = sorted(p for p in (Path(record["path"]) / MODEL_DIR).glob("*") if p.suffix in MODEL_SUFFIXES)
        folders = _saved_models(Path(record["path"]) / MODEL_DIR)
        if folders and not saved:
            lineage["model_file"] = folders[0].name
            return export_model(
                load_saved_model(folders[0]), out, name=name or folders[0].name, version=version, lineage=lineage
            )
        if not saved:
            raise BundleError(
                f"Run {record['id']} saved no Keras model or saved model folder (nothing in {record['path']}/{MODEL_DIR}); "
                "save one in the script with model.save('name.keras')."
            )
        model_file = saved[0]
    lineage["model_file"] = model_file.name
    return export_model(
        _load_keras_model(model_file), out, name=name or model_file.stem, version=version, lineage=lineage
    )
