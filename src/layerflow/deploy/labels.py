"""Version labels (TF Serving's ``stable``/``canary``): ``<base>/<name>/labels.json`` maps label -> version.

The file is replaced atomically (written to a temporary file, then renamed), so a server
polling it reads either the old labels or the new ones, never half a file. The server and
``lf.predict`` resolve a label with the one function here, ``resolve_label``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from layerflow.deploy.bundle import BundleError, ModelNotFound, check_name, versions

LABELS_FILE = "labels.json"
_LABEL = re.compile(r"^[A-Za-z0-9_]+$")


class UnknownLabel(ModelNotFound):
    """A version label the model does not have (TF Serving answers 400 for it)."""


def check_label(label: object) -> str:
    """A label name: letters, digits and '_' (TF Serving's rule), not a number (that would read as a version).

    Example:
        >>> check_label("stable")
        'stable'
    """
    if not isinstance(label, str) or not _LABEL.match(label):
        raise BundleError(f"Label {label!r} is not valid; use letters, digits and '_', e.g. 'stable' or 'canary'.")
    if label.isdigit():
        raise BundleError(f"Label {label!r} is a number, which would read as a version; use a word, e.g. 'stable'.")
    return label


def read_labels(model_dir: str | os.PathLike[str]) -> dict[str, int]:
    """The labels of one model (``<base>/<name>``), label -> version; {} without a labels file.

    Example:
        >>> read_labels("models/fashion_mlp")
        {'stable': 1, 'canary': 2}
    """
    path = Path(model_dir) / LABELS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as error:
        raise BundleError(f"{path} is not a JSON object of label -> version ({error}).") from None
    if not isinstance(data, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
        raise BundleError(f"{path} must be a JSON object of label -> version number.")
    return {str(k): int(v) for k, v in data.items()}


def resolve_label(model_dir: str | os.PathLike[str], label: str, available: list[int] | None = None) -> int:
    """The version a label points at; UnknownLabel if the model has no such label, ModelNotFound if
    the version it names is not exported (any more).

    Args:
        model_dir: the model's folder, ``<base>/<name>``.
        label: the label, e.g. ``"stable"``.
        available: the model's complete versions (read from the folder when None).

    Returns:
        The version number.

    Example:
        >>> resolve_label("models/fashion_mlp", "stable")
        1
    """
    model_dir = Path(model_dir)
    labels = read_labels(model_dir)
    if label not in labels:
        raise UnknownLabel(
            f"Unrecognized servable version label: {label!r} of model {model_dir.name!r}; "
            f"labels: {sorted(labels) or 'none'}."
        )
    version = labels[label]
    available = versions(model_dir) if available is None else available
    if version not in available:
        raise ModelNotFound(
            f"Label {label!r} of model {model_dir.name!r} points at version {version}, "
            f"which is not exported; versions: {available}."
        )
    return version


def set_label(base: str | os.PathLike[str], name: str, version: int, label: str) -> Path:
    """Points ``label`` of model ``name`` at ``version`` (atomically; a running server sees it within a second).

    Args:
        base: the model base directory (what ``layerflow serve`` serves).
        name: the model's name.
        version: an exported version of it.
        label: letters, digits and '_', not a number (``stable``, ``canary``).

    Returns:
        The labels file written.

    Example:
        >>> lf.deploy.set_label("models", "fashion_mlp", 2, "canary")
    """
    check_label(label)
    model_dir = Path(base) / check_name(name)
    if isinstance(version, bool) or not isinstance(version, int):
        raise BundleError(f"version={version!r} must be a version number.")
    available = versions(model_dir)
    if version not in available:
        raise ModelNotFound(
            f"Model {name!r} has no version {version} to label {label!r}; versions: {available or 'none'}."
        )
    labels = {**read_labels(model_dir), label: version}
    handle, temporary = tempfile.mkstemp(dir=model_dir, prefix=".labels-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(labels, file, indent=2)
            file.write("\n")
        os.replace(temporary, model_dir / LABELS_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return model_dir / LABELS_FILE
