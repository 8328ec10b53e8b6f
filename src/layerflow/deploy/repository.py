"""The models a server serves: every bundle under a base directory, reloaded as versions appear."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layerflow.deploy.bundle import BundleError, ModelNotFound, choose_version, read_bundle, versions
from layerflow.deploy.inputs import BadInput, check_rows, to_array
from layerflow.deploy.labels import resolve_label
from layerflow.errors import MissingFileError

__all__ = ["BadInput", "LoadedModel", "ModelNotFound", "ModelRepository", "load_model"]


@dataclass
class LoadedModel:
    name: str
    version: int
    signature: dict[str, Any]
    lineage: dict[str, Any]
    session: Any

    @property
    def input_specs(self) -> list[dict[str, Any]]:
        return self.signature["inputs"]

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.signature["outputs"]]

    def check(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Converts request values to arrays of the signature's dtypes and shapes, or raises BadInput."""
        names = [s["name"] for s in self.input_specs]
        unknown = sorted(set(inputs) - set(names))
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            raise BadInput(
                f"Inputs {missing} are missing and {unknown} unknown; the model takes {names}."
                if unknown and missing
                else f"Input(s) {missing or unknown} {'missing' if missing else 'unknown'}; the model takes {names}."
            )
        feed = {spec["name"]: to_array(spec, inputs[spec["name"]]) for spec in self.input_specs}
        if self.signature.get("raw_inputs"):
            check_rows(feed)
        return feed

    def named(self, inputs: Any) -> dict[str, Any]:
        """Inputs as a dict by input name: one array is accepted for a single-input model."""
        if isinstance(inputs, dict):
            return inputs
        names = [s["name"] for s in self.input_specs]
        if len(names) != 1:
            raise BundleError(f"The model takes {len(names)} inputs {names}; pass a dict of them.")
        return {names[0]: inputs}

    def predict(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(None, feed)))


def load_model(folder: str | Path, session_options: Any = None) -> LoadedModel:
    """Loads one bundle version folder (``<base>/<name>/<version>``) into an onnxruntime session."""
    import onnxruntime as ort

    folder = Path(folder)
    bundle = read_bundle(folder)
    session = ort.InferenceSession(bundle["model"], sess_options=session_options, providers=["CPUExecutionProvider"])
    version = int(folder.name) if folder.name.isdigit() else 0
    return LoadedModel(folder.parent.name, version, bundle["signature"], bundle["lineage"], session)


class ModelRepository:
    """Serves ``base/<name>/<version>/`` bundles; a version dropped in is picked up within ``poll_seconds``."""

    def __init__(self, base: str | Path, poll_seconds: float = 1.0, session_options: Any = None):
        self.base = Path(base)
        if not self.base.is_dir():
            raise MissingFileError(f"Model base directory {self.base} does not exist.")
        self.poll_seconds = poll_seconds
        self.session_options = session_options
        self._loaded: dict[tuple[str, int], LoadedModel] = {}
        self._versions: dict[str, list[int]] = {}
        self._scanned = 0.0
        self._lock = threading.Lock()
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        """Re-reads which models and versions exist (at most once per ``poll_seconds``)."""
        now = time.monotonic()
        if not force and now - self._scanned < self.poll_seconds:
            return
        found = {p.name: versions(p) for p in sorted(self.base.iterdir()) if p.is_dir()}
        with self._lock:
            self._versions = {name: v for name, v in found.items() if v}
            self._loaded = {key: m for key, m in self._loaded.items() if key[1] in self._versions.get(key[0], [])}
            self._scanned = now

    def loaded(self) -> set[tuple[str, int]]:
        """The (name, version) pairs loaded now (a removed version is dropped at the next refresh)."""
        self.refresh()
        return set(self._loaded)

    def models(self) -> dict[str, list[int]]:
        self.refresh()
        return dict(self._versions)

    def versions_of(self, name: str) -> list[int]:
        models = self.models()
        if not models.get(name):
            raise ModelNotFound(f"Model {name!r} is not served here; models: {sorted(models) or 'none'}.")
        return models[name]

    def get(self, name: str, version: int | None = None, label: str | None = None) -> LoadedModel:
        """The model ``name`` at ``version`` or ``label`` (the latest when both are None), loaded once."""
        available = self.versions_of(name)
        if label is not None:
            version = resolve_label(self.base / name, label, available)
        chosen = choose_version(name, available, version)
        key = (name, chosen)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = load_model(self.base / name / str(chosen), self.session_options)
            return self._loaded[key]
