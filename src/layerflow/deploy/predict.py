"""One predict call for a local bundle or a server URL (tfdeploy's predict_savedmodel)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from layerflow.deploy.bundle import BundleError, choose_version, versions


def _local_bundle(target: Path, name: str | None, version: int | str | None) -> Path:
    if (target / "model.onnx").is_file():
        return target
    if name is None:
        served = [p.name for p in target.iterdir() if p.is_dir() and versions(p)]
        if len(served) != 1:
            raise BundleError(f"{target} holds models {sorted(served)}; say which with name=.")
        name = served[0]
    if isinstance(version, str):  # a label: resolved as the server resolves it
        from layerflow.deploy.labels import resolve_label

        version = resolve_label(target / name, version)
    return target / name / str(choose_version(name, versions(target / name), version))


def _columns(inputs: Any) -> Any:
    """Inputs as JSON-ready columns: a dict of name -> list, or one nested list (single-input models).

    Takes a pandas DataFrame, a list of row dicts, a dict of columns or one array; missing
    values (NaN, None) become None, which raw-feature bundles read as missing.
    """
    if hasattr(inputs, "to_dict") and hasattr(inputs, "columns"):  # a pandas DataFrame (no pandas import needed)
        inputs = {str(name): inputs[name].tolist() for name in inputs.columns}
    elif isinstance(inputs, (list, tuple)) and inputs and all(isinstance(row, Mapping) for row in inputs):
        keys = list(dict.fromkeys(k for row in inputs for k in row))
        lacking = [(i, [k for k in keys if k not in row]) for i, row in enumerate(inputs) if len(row) < len(keys)]
        if lacking:
            raise BundleError(f"Row {lacking[0][0]} lacks {lacking[0][1]}; give every feature in every row "
                              "(None for a missing value).")
        inputs = {k: [row[k] for row in inputs] for k in keys}
    if isinstance(inputs, Mapping):
        return {str(k): _plain(v) for k, v in inputs.items()}
    return _plain(inputs)


def _plain(values: Any) -> Any:
    """Nested lists of plain Python values, NaN as None (JSON has no NaN)."""
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        values = values.tolist()  # numpy arrays and pandas Series, element types kept
    if isinstance(values, (list, tuple)):
        return [_plain(v) if isinstance(v, (list, tuple)) else _none_for_nan(v) for v in values]
    return _none_for_nan(values)


def _none_for_nan(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value


def predict(target: str | Path, inputs: Any, name: str | None = None, version: int | str | None = None,
            token: str | None = None, timeout: float = 60.0) -> Any:
    """Predicts with an exported model, local or served, and returns the outputs as lists.

    Args:
        target: a bundle folder, a model base directory, or a server URL (``http://host:8501``).
        inputs: one array (single-input models), a dict of input name -> values (rows first),
            a list of row dicts (``[{"age": 41, "city": "lima"}]``) or a pandas DataFrame.
            Raw-feature bundles take raw values, strings included; None or NaN is a missing value.
        name: the model's name (needed when the directory or server has several).
        version: a version number, or a label (``"stable"``); the latest when None.
        token: the server's bearer token, if it requires one.
        timeout: seconds to wait for a server's answer.

    Returns:
        The output as nested lists (a dict of them for several outputs, e.g. ``probabilities``,
        ``class_ids`` and ``classes``), as TF Serving's ``outputs`` answer holds them.

    Example:
        >>> lf.predict("models", x_test[:3])
        >>> lf.predict("http://127.0.0.1:8501", [{"age": 41, "city": "lima", "income": 52000.0}], name="income")
    """
    columns = _columns(inputs)
    text = str(target)
    if text.startswith(("http://", "https://")):
        if name is None:
            raise BundleError("Predicting through a server needs the model's name=.")
        where = "" if version is None else f"/labels/{version}" if isinstance(version, str) else f"/versions/{version}"
        path = f"/v1/models/{name}{where}:predict"
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
