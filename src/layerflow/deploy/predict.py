"""One predict call for a local bundle or a server URL (tfdeploy's predict_savedmodel)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
            raise BundleError(
                f"Row {lacking[0][0]} lacks {lacking[0][1]}; give every feature in every row "
                "(None for a missing value)."
            )
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


def _arrays(outputs: Mapping[str, Any], specs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """JSON outputs as arrays of their signature's dtypes (strings as object arrays, as onnxruntime gives them)."""
    dtypes = {spec["name"]: spec.get("dtype") for spec in specs}
    result = {}
    for name, values in outputs.items():
        try:
            dtype = np.dtype(dtypes.get(name) or object)
        except TypeError:  # a type the signature names but numpy does not ("string", an ONNX type name)
            dtype = np.dtype(object)
        result[name] = np.asarray(values, dtype=dtype)
    return result


def _request_json(url: str, body: Any, token: str | None, timeout: float) -> Any:
    """The JSON answer of a GET (``body`` None) or POST to the server, or a BundleError saying what went wrong."""
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        try:
            detail = json.loads(detail)["error"]
        except (ValueError, KeyError):
            pass
        raise BundleError(f"The server answered {error.code}: {detail}") from None
    except urllib.error.URLError as error:
        raise BundleError(f"Cannot reach {url}: {error.reason}.") from None


def _served_outputs(
    base: str, columns: Any, name: str, version: int | str | None, token: str | None, timeout: float
) -> dict[str, np.ndarray]:
    """Predicts through a server's TF Serving REST API and names the outputs by the model's signature.

    The wire format stays TF Serving's: a model with one output answers ``{"outputs": value}``
    without its name, so the name (and every output's dtype) comes from the model's metadata.
    """
    models = f"{base.rstrip('/')}/v1/models/{name}"
    where = "" if version is None else f"/labels/{version}" if isinstance(version, str) else f"/versions/{version}"
    # The bundle's signature first (layerflow's own route; TF Serving's /metadata has no dtypes numpy
    # reads): it names the version that answers (the latest, or the label's), and the prediction is asked
    # of that version, so a version published or a label moved in between cannot mismatch the names.
    described = _request_json(f"{models}{where}/signature", None, token, timeout)
    answering = described["model_spec"]["version"]
    specs = described["signature"]["outputs"]
    outputs = _request_json(f"{models}/versions/{answering}:predict", {"inputs": columns}, token, timeout)["outputs"]
    if not isinstance(outputs, dict):
        if len(specs) != 1:
            raise BundleError(
                f"The server answered one unnamed output for model {name!r}, whose signature has "
                f"{len(specs)} outputs {[s['name'] for s in specs]}; expected one named output each."
            )
        outputs = {specs[0]["name"]: outputs}
    return _arrays(outputs, specs)


def predict(
    target: str | Path,
    inputs: Any,
    name: str | None = None,
    version: int | str | None = None,
    token: str | None = None,
    timeout: float = 60.0,
) -> dict[str, np.ndarray]:
    """Predicts with an exported model, local or served, and returns its outputs by name.

    The result has the same keys, dtypes and shapes whatever the transport: a bundle folder is
    run in-process; a server URL is asked through TF Serving's REST API (whose reply is not
    changed: one output comes back unnamed there, and its name is read from the model's metadata).

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
        A dict of output name -> numpy array (rows first), one entry per output of the bundle's
        signature, even when there is one: ``predictions`` for a regressor; ``probabilities``,
        ``class_ids`` and ``classes`` for a classifier; a Keras model's own output names.

    Example:
        >>> lf.predict("models", x_test[:3])["output"].shape  # a Keras model's one output
        (3, 10)
        >>> lf.predict("http://127.0.0.1:8501", [{"age": 41, "city": "lima", "income": 52000.0}],
        ...            name="income")["predictions"]
        array([[0.73]], dtype=float32)
    """
    columns = _columns(inputs)
    text = str(target)
    if text.startswith(("http://", "https://")):
        if name is None:
            raise BundleError("Predicting through a server needs the model's name=.")
        return _served_outputs(text, columns, name, version, token, timeout)
    folder = Path(text)
    if not folder.is_dir():
        raise BundleError(f"{text} is neither a folder of exported models nor an http(s) URL.")
    from layerflow.deploy.repository import load_model

    model = load_model(_local_bundle(folder, name, version))
    return {k: np.asarray(v) for k, v in model.predict(model.check(model.named(columns))).items()}
