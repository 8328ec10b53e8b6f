"""cloudml's tuning config (``hptuning_config.yaml``'s ``trainingInput.hyperparameters``) as a tuning run."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from layerflow.tuning.space import Range, TuningError, loguniform, randint, uniform

_GOALS = {"MAXIMIZE": "max", "MINIMIZE": "min"}
_ALGORITHMS = {
    "ALGORITHM_UNSPECIFIED": "tpe",
    "BAYESIAN_OPTIMIZATION": "tpe",
    "GRID_SEARCH": "grid",
    "RANDOM_SEARCH": "random",
}
_TYPES = ("DOUBLE", "INTEGER", "CATEGORICAL", "DISCRETE")
_SCALES = ("UNIT_LINEAR_SCALE", "UNIT_LOG_SCALE", "UNIT_REVERSE_LOG_SCALE")
_FIELDS = {
    "goal",
    "hyperparameterMetricTag",
    "maxTrials",
    "maxParallelTrials",
    "enableTrialEarlyStopping",
    "algorithm",
    "params",
    "resumePreviousJobId",
}
_PARAM_FIELDS = {"parameterName", "type", "minValue", "maxValue", "scaleType", "categoricalValues", "discreteValues"}


def hptuning_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads cloudml's tuning config into ``lf.tuning_run`` arguments.

    Fields: ``goal`` (MAXIMIZE|MINIMIZE -> mode), ``hyperparameterMetricTag`` (metric),
    ``maxTrials`` (trials), ``maxParallelTrials`` (parallel), ``enableTrialEarlyStopping``
    (early_stopping), ``algorithm`` (ALGORITHM_UNSPECIFIED and BAYESIAN_OPTIMIZATION -> tpe,
    GRID_SEARCH -> grid, RANDOM_SEARCH -> random), ``resumePreviousJobId`` (resume) and
    ``params``: ``parameterName``, ``type`` DOUBLE (uniform or loguniform by ``scaleType``),
    INTEGER (randint; a grid tries every whole number), CATEGORICAL (``categoricalValues``),
    DISCRETE (``discreteValues``). A field layerflow cannot honour is an error naming it.

    Args:
        path: the YAML file, with ``trainingInput: {hyperparameters: {...}}`` (or the
            ``hyperparameters`` mapping at its top).

    Returns:
        ``{"flags": ..., "search": ..., "metric": ..., "mode": ..., "trials": ..., "parallel": ...,
        "early_stopping": ...}`` (only the keys the file gives, ``flags`` always).

    Raises:
        TuningError: an unreadable file, an unknown field, type, scale, goal or algorithm,
            min > max, or a log scale over values that are not all above 0.

    Example:
        >>> lf.tuning_run("train.py", **lf.tuning.hptuning_config("hptuning.yml"))
    """
    import yaml

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise TuningError(f"Cannot read the tuning config {path}: {error}") from None
    if isinstance(document, Mapping) and "trainingInput" in document:
        document = document["trainingInput"]
    if isinstance(document, Mapping) and "hyperparameters" in document:
        document = document["hyperparameters"]
    if not isinstance(document, Mapping):
        raise TuningError(f"{path}: expected trainingInput: {{hyperparameters: {{goal: ..., params: [...]}}}}.")
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise TuningError(
            f"{path}: field(s) {unknown} of hyperparameters cannot be honoured; layerflow reads {sorted(_FIELDS)}."
        )
    out: dict[str, Any] = {}
    if "goal" in document:
        out["mode"] = _pick(path, "goal", document["goal"], _GOALS)
    if "hyperparameterMetricTag" in document:
        out["metric"] = _text(path, "hyperparameterMetricTag", document["hyperparameterMetricTag"])
    if "maxTrials" in document:
        out["trials"] = _count(path, "maxTrials", document["maxTrials"])
    if "maxParallelTrials" in document:
        out["parallel"] = _count(path, "maxParallelTrials", document["maxParallelTrials"])
    if "enableTrialEarlyStopping" in document:
        if not isinstance(document["enableTrialEarlyStopping"], bool):
            raise TuningError(
                f"{path}: enableTrialEarlyStopping must be true or false, not {document['enableTrialEarlyStopping']!r}."
            )
        out["early_stopping"] = document["enableTrialEarlyStopping"]
    if "resumePreviousJobId" in document:
        out["resume"] = _text(path, "resumePreviousJobId", document["resumePreviousJobId"])
    out["search"] = _pick(path, "algorithm", document.get("algorithm", "ALGORITHM_UNSPECIFIED"), _ALGORITHMS)
    params = document.get("params")
    if not isinstance(params, list) or not params:
        if "resume" in out and params is None:
            return out
        raise TuningError(f"{path}: params must be a list of parameters (parameterName, type, ...).")
    flags: dict[str, Any] = {}
    for index, param in enumerate(params):
        name, value = _param(path, index, param, out["search"])
        if name in flags:
            raise TuningError(f"{path}: parameter {name!r} is given twice.")
        flags[name] = value
    out["flags"] = flags
    return out


def _param(path: Path, index: int, param: Any, search: str) -> tuple[str, list[Any] | Range]:
    where = f"{path}: params[{index}]"
    if not isinstance(param, Mapping):
        raise TuningError(f"{where} must be a mapping with parameterName and type.")
    unknown = sorted(set(param) - _PARAM_FIELDS)
    if unknown:
        raise TuningError(f"{where}: field(s) {unknown} cannot be honoured; a parameter has {sorted(_PARAM_FIELDS)}.")
    name = _text(where, "parameterName", param.get("parameterName"))
    if not name.isidentifier():
        raise TuningError(f"{where}: parameterName {name!r} is not a flag name.")
    where = f"{path}: parameter {name!r}"
    kind = param.get("type")
    if kind not in _TYPES:
        raise TuningError(f"{where}: unknown type {kind!r}; expected one of {', '.join(_TYPES)}.")
    scale = param.get("scaleType", "UNIT_LINEAR_SCALE")
    if scale not in _SCALES:
        raise TuningError(f"{where}: unknown scaleType {scale!r}; expected one of {', '.join(_SCALES)}.")
    if kind in ("CATEGORICAL", "DISCRETE"):
        field = "categoricalValues" if kind == "CATEGORICAL" else "discreteValues"
        values = param.get(field)
        if not isinstance(values, list) or not values:
            raise TuningError(f"{where}: type {kind} needs {field}, a list of values.")
        if kind == "CATEGORICAL" and not all(isinstance(v, str) for v in values):
            raise TuningError(f"{where}: categoricalValues must be strings; use DISCRETE for numbers.")
        if kind == "DISCRETE" and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise TuningError(f"{where}: discreteValues must be numbers.")
        extra = sorted({"minValue", "maxValue"} & set(param))
        if extra:
            raise TuningError(f"{where}: {extra} do not apply to type {kind} (it takes {field}).")
        return name, list(values)
    for field in ("minValue", "maxValue"):
        if not isinstance(param.get(field), (int, float)) or isinstance(param.get(field), bool):
            raise TuningError(f"{where}: type {kind} needs {field}, a number.")
    low, high = param["minValue"], param["maxValue"]
    if low > high:
        raise TuningError(f"{where}: minValue {low} is above maxValue {high}.")
    if scale != "UNIT_LINEAR_SCALE" and low <= 0:
        raise TuningError(f"{where}: scaleType {scale} needs values above 0; minValue is {low}.")
    if scale == "UNIT_REVERSE_LOG_SCALE":
        raise TuningError(
            f"{where}: scaleType UNIT_REVERSE_LOG_SCALE cannot be honoured (Optuna has no reverse "
            f"log distribution); use UNIT_LINEAR_SCALE or UNIT_LOG_SCALE."
        )
    if kind == "INTEGER":
        if not all(isinstance(v, int) for v in (low, high)):
            raise TuningError(f"{where}: type INTEGER needs whole minValue and maxValue.")
        if scale == "UNIT_LOG_SCALE":
            raise TuningError(
                f"{where}: scaleType UNIT_LOG_SCALE over an INTEGER cannot be honoured; use DISCRETE "
                f"with the values to try, or UNIT_LINEAR_SCALE."
            )
        if search == "grid" or low == high:
            return name, list(range(low, high + 1))
        return name, randint(low, high)
    if search == "grid":
        raise TuningError(f"{where}: a GRID_SEARCH cannot try every DOUBLE; use DISCRETE values or INTEGER.")
    if low == high:
        return name, [float(low)]
    return name, loguniform(low, high) if scale == "UNIT_LOG_SCALE" else uniform(low, high)


def _pick(path: Path, field: str, value: Any, known: Mapping[str, str]) -> str:
    if value not in known:
        raise TuningError(f"{path}: unknown {field} {value!r}; expected one of {', '.join(known)}.")
    return known[value]


def _text(where: Any, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TuningError(f"{where}: {field} must be a non-empty string, not {value!r}.")
    return value.strip()


def _count(path: Path, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TuningError(f"{path}: {field} must be a whole number of at least 1, not {value!r}.")
    return value


__all__ = ["hptuning_config"]
