"""Request values -> the arrays a bundle's signature asks for, or a BadInput naming the input.

Raw-feature bundles (exported with a feature spec) take one value per row for each column:
strings for categorical columns (``None`` is a missing value, which goes to the
out-of-vocabulary bucket; an integer is taken as its text, as in training), numbers for numeric ones (``None`` or NaN is a missing value
where the signature says ``"missing": true``; the graph imputes it). A string where a
number is expected, or a number where a string is expected, is refused.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from layerflow.errors import LayerflowError

DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "int64": np.int64, "bool": np.bool_}


class BadInput(LayerflowError, ValueError):
    """Inputs that do not fit the model's signature."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_b64(value: Any) -> bool:
    """Whether ``value`` is TF Serving's binary value, an object with exactly one key ``b64``.

    Example:
        >>> is_b64({"b64": "bGltYQ=="})
        True
    """
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def decode_b64(name: str, value: dict[str, Any]) -> str:
    """The text a ``{"b64": "..."}`` value encodes (string inputs hold text), or a BadInput naming the input.

    Example:
        >>> decode_b64("city", {"b64": "bGltYQ=="})
        'lima'
    """
    encoded = value["b64"]
    if not isinstance(encoded, str):
        raise BadInput(f'Input {name!r}: a {{"b64": ...}} value must hold a base64 string; got {_shown(encoded)}.')
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"Input {name!r}: {_shown(encoded)} is not valid base64 (RFC 4648, with padding).") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(
            f"Input {name!r}: its b64 value decodes to bytes that are not UTF-8 text; this model's "
            "string inputs take text."
        ) from None


def _string_column(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=object)
    if array.ndim == 0 and isinstance(values, dict):  # one scalar {"b64": ...}
        array = np.empty((), dtype=object)
        array[()] = values
    flat = array.reshape(-1).copy()
    for i, value in enumerate(flat):
        if isinstance(value, dict):
            if not is_b64(value):
                raise BadInput(
                    f"Input {name!r} takes strings; got the object {_shown(value)}. A binary value is "
                    'an object with exactly one key, {"b64": "..."}.'
                )
            flat[i] = decode_b64(name, value)
        elif value is None:
            flat[i] = ""  # missing: out of vocabulary, as in FeatureSpec.transform
        elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            flat[i] = str(value)  # an integer category code has the text Python gives it
        elif not isinstance(value, str):
            raise BadInput(
                f"Input {name!r} takes strings (a category); got {_shown(value)} "
                f'({type(value).__name__}). Send it as text, e.g. "{value}".'
            )
    return flat.reshape(array.shape)


def _number_column(name: str, values: Any, dtype: Any, missing: bool) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "US":
        raise BadInput(f"Input {name!r} takes numbers; got the string {_shown(str(array.reshape(-1)[0]))}.")
    if array.dtype.kind == "O":
        flat = array.reshape(-1)
        for value in flat:
            if isinstance(value, (str, bytes)):
                raise BadInput(f"Input {name!r} takes numbers; got the string {_shown(value)}.")
            if is_b64(value):
                raise BadInput(f'Input {name!r} takes numbers; a {{"b64": ...}} value is only for string inputs.')
            if isinstance(value, (bool, np.bool_)) or not (value is None or isinstance(value, (int, float, np.number))):
                raise BadInput(f"Input {name!r} takes numbers; got {_shown(value)} ({type(value).__name__}).")
            if value is None and not missing:
                raise BadInput(f"Input {name!r} has a missing value (null); this model needs every value of it.")
        array = np.asarray([np.nan if v is None else v for v in flat], dtype=np.float64).reshape(array.shape)
    elif array.dtype.kind == "b":
        raise BadInput(f"Input {name!r} takes numbers; got true/false values.")
    if not missing and array.dtype.kind == "f" and not np.isfinite(array).all():
        raise BadInput(f"Input {name!r} holds NaN or infinite values; send finite numbers.")
    if missing and array.dtype.kind == "f" and np.isinf(array).any():
        raise BadInput(f"Input {name!r} holds infinite values; send numbers, or null for a missing one.")
    if np.dtype(dtype).kind == "i" and array.dtype.kind == "f":
        if np.isnan(array).any() or (array != np.round(array)).any():
            raise BadInput(f"Input {name!r} takes whole numbers; got {array.reshape(-1)[:5].tolist()}.")
    return array.astype(dtype)


def to_array(spec: dict[str, Any], values: Any) -> np.ndarray:
    """``values`` as an array of ``spec``'s dtype and shape (a ``[batch]`` input also takes ``[batch, 1]``).

    Args:
        spec: one entry of a signature's ``inputs`` (name, dtype, shape, and ``missing``).
        values: the request's values for that input (nested lists, or an array).

    Returns:
        The array to feed onnxruntime.

    Example:
        >>> to_array({"name": "city", "dtype": "string", "shape": [None]}, ["lima", None]).tolist()
        ['lima', '']
    """
    name, dtype = spec["name"], spec["dtype"]
    try:
        if dtype == "string":
            array = _string_column(name, values)
        elif dtype in DTYPES and dtype != "bool":
            array = _number_column(name, values, DTYPES[dtype], bool(spec.get("missing")))
        else:
            array = np.asarray(values, dtype=DTYPES.get(dtype))
    except (ValueError, TypeError) as error:
        if isinstance(error, BadInput):
            raise
        raise BadInput(f"Input {name!r} is not a rectangular array of {dtype} values.") from None
    expected = spec["shape"]
    if len(expected) == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array.reshape(-1)
    if len(expected) == 1 and array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != len(expected) or any(e is not None and e != a for e, a in zip(expected, array.shape)):
        shown = ["batch" if e is None else e for e in expected]
        raise BadInput(f"Input {name!r} has shape {list(array.shape)}; the model expects {shown}.")
    return array


def check_rows(feed: dict[str, np.ndarray]) -> None:
    """Raises BadInput unless every raw input has the same number of rows.

    Example:
        >>> check_rows({"age": np.array([41.0]), "city": np.array(["lima"], dtype=object)})
    """
    counts = {name: len(array) for name, array in feed.items() if array.ndim}
    if len(set(counts.values())) > 1:
        raise BadInput(f"Inputs have different numbers of rows: {counts}; send one value per row for each.")
