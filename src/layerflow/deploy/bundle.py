"""The export bundle on disk: TF Serving's ``<base>/<name>/<version>/`` layout of three files.

This module reads and writes bundles without importing any training library, so the
server can use it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from layerflow.errors import LayerflowError

MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"
LINEAGE_FILE = "lineage.json"
BUNDLE_FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class BundleError(LayerflowError, ValueError):
    """A bundle that cannot be written or read as the layout says."""


def check_name(name: str) -> str:
    """Model names become URL path parts and folder names: letters, digits, '_', '.', '-'."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise BundleError(
            f"Model name {name!r} is not valid; use letters, digits, '_', '.' or '-', e.g. 'fashion_mlp'."
        )
    return name


def versions(model_dir: Path) -> list[int]:
    """The complete versions of one model (folders named by an integer holding model.onnx)."""
    if not model_dir.is_dir():
        return []
    return sorted(
        int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and (p / MODEL_FILE).is_file()
    )


class ModelNotFound(BundleError, LookupError):
    """An unknown model name or version."""


def choose_version(name: str, available: list[int], version: int | None) -> int:
    """The version to use of model ``name``: ``version`` if exported, the latest when None.

    The one rule the server and ``lf.predict`` share.

    Args:
        name: the model's name (for the error message).
        available: its complete versions, ascending (``versions(model_dir)``).
        version: the version asked for, or None for the latest.

    Returns:
        The chosen version number.

    Example:
        >>> choose_version("fashion_mlp", [1, 2, 3], None)
        3
    """
    if not available:
        raise ModelNotFound(f"Model {name!r} has no exported version.")
    if version is None:
        return available[-1]
    if version not in available:
        raise ModelNotFound(f"Model {name!r} has no version {version}; versions: {available}.")
    return version


def version_dir(base: Path, name: str, version: int | None) -> Path:
    """The folder for a new version: ``version`` if given and free, else the next free integer."""
    model_dir = Path(base) / check_name(name)
    taken = {int(p.name) for p in model_dir.iterdir() if p.name.isdigit()} if model_dir.is_dir() else set()
    if version is None:
        version = max(taken, default=0) + 1
    elif not isinstance(version, int) or version < 1:
        raise BundleError(f"version={version!r} must be a positive integer.")
    elif version in taken:
        raise BundleError(f"{model_dir / str(version)} exists already; pick another --version or leave it out.")
    return model_dir / str(version)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def read_bundle(folder: Path) -> dict[str, Any]:
    """Reads signature and lineage of one version folder; BundleError when incomplete."""
    folder = Path(folder)
    missing = [n for n in (MODEL_FILE, SIGNATURE_FILE) if not (folder / n).is_file()]
    if missing:
        raise BundleError(f"{folder} is not an export bundle: {', '.join(missing)} missing.")
    try:
        signature = json.loads((folder / SIGNATURE_FILE).read_text())
        lineage = json.loads((folder / LINEAGE_FILE).read_text()) if (folder / LINEAGE_FILE).is_file() else {}
    except json.JSONDecodeError as error:
        raise BundleError(f"{folder}: a bundle file is not valid JSON ({error}).") from None
    return {"path": str(folder), "model": str(folder / MODEL_FILE), "signature": signature, "lineage": lineage}
