"""One predict call for a local bundle or a server URL (tfdeploy's predict_savedmodel)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from layerflow.deploy.bundle import BundleError, versions


def _local_bundle(target: Path, name: str | None, version: int | None) -> Path:
    if (target / "model.onnx").is_file():
        return target
    if name is None:
        served = [p.name for p in target.iterdir() if p.is_dir() and versions(p)]
        if len(served) != 1:
            raise BundleError(f"{target} holds models {sorted(served)}; say which with name=.")
        name = served[0]
    available = versions(target / name)
    if not available:
        raise BundleError(f"No exported versions of {name!r} under {target}.")
    chosen = available[-1] if version is None else version
    if chosen not in available:
        raise BundleError(f"Model {name!r} has no version {version}; versions: {available}.")
    return target / name / str(chosen)


def predict(target: str | Path, inputs: Any, name: str | None = None, version: int | None = None,
            token: str | None = None, timeout: float = 60.0) -> Any:
    """Predicts with an exported model, local or served, and returns the outputs as lists.

    Args:
        target: a bundle folder, a model base directory, or a server URL (``http://host:8501``).
        inputs: one array (single-input models) or a dict of input name -> array, rows first.
        name: the model's name (needed when the directory or server has several).
        version: a version number; the latest when None.
        token: the server's bearer token, if it requires one.

    Returns:
        The output as nested lists (a dict of them for several outputs), as TF Serving's
        ``outputs`` answer holds them.

    Example:
        >>> lf.predict("models", x_test[:3])
        >>> lf.predict("http://127.0.0.1:8501", x_test[:3], name="fashion_mlp")
    """
    columns = {k: np.asarray(v).tolist() for k, v in inputs.items()} if isinstance(inputs, Mapping) \
        else np.asarray(inputs).tolist()
    text = str(target)
    if text.startswith(("http://", "https://")):
        if name is None:
            raise BundleError("Predicting through a server needs the model's name=.")
        path = f"/v1/models/{name}" + (f"/versions/{version}" if version is not None else "") + ":predict"
        request = urllib.request.Request(text.rstrip("/") + path, data=json.dumps({"inputs": columns}).encode(),
                                         headers={"Content-Type": "application/json",
                                                  **({"Authorization": f"Bearer {token}"} if token else {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())["outputs"]
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            try:
                detail = json.loads(detail)["error"]
            except (ValueError, KeyError):
                pass
            raise BundleError(f"The server answered {error.code}: {detail}") from None
        except urllib.error.URLError as error:
            raise BundleError(f"Cannot reach {text}: {error.reason}.") from None
    folder = Path(text)
    if not folder.is_dir():
        raise BundleError(f"{text} is neither a folder of exported models nor an http(s) URL.")
    from layerflow.deploy.repository import load_model

    model = load_model(_local_bundle(folder, name, version))
    outputs = {k: v.tolist() for k, v in model.predict(model.check(model.named(columns))).items()}
    return next(iter(outputs.values())) if len(outputs) == 1 else outputs

