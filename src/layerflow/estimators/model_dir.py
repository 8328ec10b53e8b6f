"""An estimator's folder: what it is (``estimator.json``), its fitted spec and its checkpoints.

Every file is written to a temporary name and renamed into place, so a process killed at
any moment leaves the previous checkpoint intact and ``estimator.json`` always names a
checkpoint that exists.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from layerflow.estimators.errors import ModelDirError

MANIFEST = "estimator.json"
SPEC_FILE = "feature_spec.json"
FORMAT_VERSION = 1
# Names the function that reads the folder back, for tools that know no estimator (layerflow export).
LOADER_FILE = "layerflow_model.json"
LOADER = {"loader": "layerflow.estimators:load"}


def write_json_atomic(path: Path, data: Any) -> None:
    """Writes ``data`` as JSON to ``path`` so that readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as stream:
            json.dump(data, stream, indent=2)
            stream.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(model_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of an estimator folder, or None when the folder holds no estimator."""
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ModelDirError(f"{path} is damaged (invalid JSON: {error}); it is not overwritten.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION or "kind" not in manifest:
        raise ModelDirError(f"{path} is not an estimator manifest of format {FORMAT_VERSION}.")
    return manifest


def check_compatible(model_dir: Path, manifest: dict[str, Any], kind: str, config: dict[str, Any]) -> None:
    """Raises ``ModelDirError`` when ``model_dir`` holds another kind or configuration of estimator."""
    if manifest["kind"] != kind:
        raise ModelDirError(
            f"model_dir {str(model_dir)!r} holds a {manifest['kind']}, not a {kind}; "
            "use another model_dir (nothing in it was changed)."
        )
    saved = manifest.get("config", {})
    different = {k: (saved.get(k), v) for k, v in config.items() if k in saved and saved.get(k) != v}
    if different:
        detail = "; ".join(f"{k}: saved {old!r}, given {new!r}" for k, (old, new) in different.items())
        raise ModelDirError(
            f"model_dir {str(model_dir)!r} holds a {kind} with another configuration ({detail}); "
            "use another model_dir (nothing in it was changed)."
        )


def check_same_spec(model_dir: Path, saved_state: dict[str, Any], given_state: dict[str, Any]) -> None:
    """Raises ``ModelDirError`` when the given fitted spec differs from the one in ``model_dir``."""
    if json.loads(json.dumps(saved_state)) == json.loads(json.dumps(given_state)):
        return
    saved_columns = [c["name"] for c in saved_state["numeric"] + saved_state["categorical"]]
    given_columns = [c["name"] for c in given_state["numeric"] + given_state["categorical"]]
    raise ModelDirError(
        f"model_dir {str(model_dir)!r} was trained with another feature spec "
        f"(saved columns {saved_columns}, given {given_columns}, or the same columns with other "
        "statistics or vocabularies); use another model_dir (nothing in it was changed)."
    )
