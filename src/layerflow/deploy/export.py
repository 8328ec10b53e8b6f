"""Exporting a trained model to an ONNX bundle that serves with no training code behind it.

Exporters are tried in order; each knows one family of models: Keras models, and XGBoost
boosters (through onnxmltools). An object with ``export_parts()`` (a fitted estimator) says
which model, feature spec and head it is made of. With a feature spec, its preprocessing
graph (``preprocessing.py``) is composed in front of the model's; with a head, the head's
graph (``heads.py``) behind it (``compose.py``), so the bundle takes raw values and gives
tf.estimator's prediction keys.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layerflow.deploy.bundle import (
    BUNDLE_FORMAT,
    LINEAGE_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    BundleError,
    version_dir,
    write_json,
)
from layerflow.deploy.compose import MODEL_PREFIX, merge, opset_of, prefixed, upgrade
from layerflow.deploy.heads import HEAD_INPUT, HeadError, check_head, head_model

_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def _is_keras_model(model: Any) -> bool:
    return any(cls.__module__.startswith("keras") and cls.__name__ in ("Model", "Layer") for cls in type(model).__mro__)


def _input_signature(model: Any) -> Any:
    """The input signature Keras would derive for a Sequential or functional model, from public attributes.

    Given to ``model.export``, it lets Keras export a model it has not seen called (a model just
    loaded or declared); None for a subclassed model, which Keras exports only once called.
    """
    import keras

    def spec(tensor: Any) -> Any:
        return keras.InputSpec(shape=(None, *tensor.shape[1:]), dtype=tensor.dtype, name=tensor.name)

    if isinstance(model, keras.Sequential):
        return [spec(tensor) for tensor in model.inputs] if model.built else None
    if not getattr(model, "inputs", None):  # a subclassed model declares no symbolic inputs
        return None
    return [keras.tree.map_structure(spec, model.input)]  # functional: the inputs' structure as built (dict, list)


def _export_keras(model: Any, target: Path) -> None:
    signature = _input_signature(model)
    if signature is None and not model.built:
        raise BundleError("The Keras model has no known inputs; train it or call it on data before exporting.")
    try:
        model.export(str(target), format="onnx", verbose=False, input_signature=signature)
    except ValueError as error:
        if signature is not None:
            raise
        raise BundleError(
            f"Keras cannot export this subclassed model yet ({error}); call it on data (or train it) before exporting."
        ) from None
    names = list(getattr(model, "output_names", None) or [])
    _rename_outputs(target, names)


def _rename_outputs(path: Path, names: list[str]) -> None:
    """Gives the ONNX outputs the model's output names (the tracer numbers them: '23')."""
    import onnx

    graph_model = onnx.load(str(path))
    outputs = graph_model.graph.output
    if len(names) != len(outputs) or len(set(names)) != len(names):
        names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    renames = {output.name: new for output, new in zip(outputs, names)}
    for node in graph_model.graph.node:
        node.output[:] = [renames.get(name, name) for name in node.output]
        node.input[:] = [renames.get(name, name) for name in node.input]
    for output in outputs:
        output.name = renames[output.name]
    onnx.save(graph_model, str(path))


def _is_xgboost_booster(model: Any) -> bool:
    return any(cls.__module__.startswith("xgboost") and cls.__name__ == "Booster" for cls in type(model).__mro__)


def _export_xgboost(booster: Any, target: Path) -> None:
    """Converts a Booster (input: the spec's encoded matrix, float32) with onnxmltools."""
    try:
        import onnx
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as error:
        raise BundleError(
            f"Exporting XGBoost models needs onnxmltools: pip install 'layerflow[train]' ({error})."
        ) from None
    width = booster.num_features()
    if booster.feature_names is not None:  # onnxmltools reads features as f0, f1, ... by position
        booster = booster.copy()
        booster.feature_names = None
    try:
        converted = convert_xgboost(
            booster, initial_types=[("input", FloatTensorType([None, width]))], target_opset=XGBOOST_OPSET
        )
    except Exception as error:  # noqa: BLE001 - the converter raises many kinds for what it cannot convert
        raise BundleError(
            f"onnxmltools could not convert the XGBoost booster ({type(error).__name__}: {error})."
        ) from None
    onnx.save(converted, str(target))


XGBOOST_OPSET = 15  # the newest onnxmltools converts XGBoost to

# (can this exporter handle the model?, write the ONNX file)
EXPORTERS: list[tuple[Callable[[Any], bool], Callable[[Any, Path], None]]] = [
    (_is_keras_model, _export_keras),
    (_is_xgboost_booster, _export_xgboost),
]


def _describe(node: Any) -> dict[str, Any]:
    return {
        "name": node.name,
        "dtype": _ONNX_TYPES.get(node.type, node.type),
        "shape": [d if isinstance(d, int) else None for d in node.shape],
    }


def _signature(
    onnx_path: Path,
    class_labels: Sequence[str] | None,
    preprocessing: Mapping[str, Any] | None,
    raw_inputs: list[dict[str, Any]] | None = None,
    head: str | None = None,
) -> dict[str, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    # Keras names the ONNX inputs after its own (named) inputs, so the names users know work.
    inputs = [_describe(node) for node in session.get_inputs()]
    if raw_inputs is not None:
        described = {entry["name"]: entry for entry in raw_inputs}
        inputs = [{**described.get(entry["name"], {}), **entry} for entry in inputs]
    signature: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "inputs": inputs,
        "outputs": [_describe(node) for node in session.get_outputs()],
    }
    if raw_inputs is not None:
        signature["raw_inputs"] = True
    if head is not None:
        signature["head"] = head
    if class_labels is not None:
        signature["class_labels"] = [str(label) for label in class_labels]
    if preprocessing is not None:
        signature["preprocessing"] = dict(preprocessing)
    return signature


def _parts_of(model: Any) -> dict[str, Any]:
    """What an object with ``export_parts()`` (a fitted estimator) says it is made of, checked."""
    try:
        parts = dict(model.export_parts())
    except BundleError:
        raise
    except Exception as error:
        raise BundleError(f"{type(model).__name__}.export_parts() failed: {error}") from error
    missing = [k for k in ("kind", "model", "feature_spec", "head", "model_outputs") if k not in parts]
    if missing:
        raise BundleError(f"{type(model).__name__}.export_parts() lacks {missing}; it gives {sorted(parts)}.")
    if parts["kind"] not in ("keras", "xgboost"):
        raise BundleError(f"export_parts() kind {parts['kind']!r} is not known; expected 'keras' or 'xgboost'.")
    return parts


def _build_graph(
    model: Any,
    staged: Path,
    feature_spec: Any,
    head: str | None,
    model_outputs: str | None,
    class_labels: Sequence[str] | None,
    feature_names: Sequence[str] | None = None,
) -> tuple[list[dict[str, Any]] | None, list[str] | None]:
    """Writes the model's graph to ``staged``, with the spec's preprocessing in front and the head behind.

    Returns the raw input descriptions (None without a spec) and the class labels of the head.
    """
    exporter = next((write for can, write in EXPORTERS if can(model)), None)
    if exporter is None:
        raise BundleError(
            f"No exporter knows a {type(model).__module__}.{type(model).__name__}; "
            "layerflow exports Keras models, XGBoost boosters and objects with export_parts()."
        )
    if head is not None:
        check_head(head, model_outputs or "", class_labels)
    is_booster = _is_xgboost_booster(model)
    if is_booster and feature_spec is None:
        raise BundleError(
            "An XGBoost booster is exported with the feature_spec= it was trained on "
            "(its encoded matrix is the booster's input)."
        )
    exporter(model, staged)
    if feature_spec is None and head is None:
        return None, None
    import onnx
    from onnx import TensorProto

    graph = upgrade(onnx.load(str(staged)))
    outputs = [o.name for o in graph.graph.output]
    raw_inputs = None
    if feature_spec is not None:
        if not getattr(feature_spec, "fitted", False):
            raise BundleError("feature_spec= must be a fitted spec: call .fit() (or pass the estimator's own spec).")
        from layerflow.deploy.preprocessing import preprocessing_model, raw_input_signature

        graph = prefixed(graph)
        versions = {
            "opset": opset_of(graph),
            "ml_opset": max(opset_of(graph, "ai.onnx.ml"), 3),
            "ir_version": graph.ir_version,
        }
        if is_booster:
            order = list(feature_names or feature_spec.input_names)
            unknown = sorted(set(order) - set(feature_spec.input_names))
            if unknown:
                raise BundleError(
                    f"feature_names {unknown} are not encoded by the spec; it encodes {feature_spec.input_names}."
                )
            if model.num_features() != len(order):
                raise BundleError(
                    f"The booster takes {model.num_features()} features; the spec encodes {len(order)} ({order})."
                )
            pre = preprocessing_model(feature_spec, {}, matrix=order, **versions)
            io_map = [("encoded/matrix", MODEL_PREFIX + "input")]
        else:
            wanted = {i.name.removeprefix(MODEL_PREFIX): i.type.tensor_type.elem_type for i in graph.graph.input}
            pre = preprocessing_model(feature_spec, wanted, **versions)
            io_map = [("encoded/" + name, MODEL_PREFIX + name) for name in wanted]
        graph = merge(pre, graph, io_map)
        outputs = [MODEL_PREFIX + name for name in outputs]
        raw_inputs = raw_input_signature(feature_spec)
    labels = None
    if head is not None:
        chosen = (
            outputs[0]
            if len(outputs) == 1
            else next((o for o in outputs if o.endswith(("probabilities", "variable"))), None)
        )
        if chosen is None:
            raise BundleError(f"The model has outputs {outputs}; a head needs one.")
        value = next(o for o in graph.graph.output if o.name == chosen)
        dims = value.type.tensor_type.shape.dim
        width = dims[-1].dim_value if len(dims) > 1 and dims[-1].dim_value else 0
        if not width and is_booster:
            import json

            classes = int(json.loads(model.save_config())["learner"]["learner_model_param"].get("num_class", 0))
            width = classes if classes > 1 else 2 if head == "binary" else 1
        if not width:
            width = len(class_labels) if class_labels is not None and head == "multiclass" else 1
        if head == "regression":
            labels = None
        elif class_labels is not None:
            labels = [str(c) for c in class_labels]
        else:
            labels = ["0", "1"] if head == "binary" else [str(i) for i in range(width)]
        if head == "multiclass" and width != len(labels or []):
            raise HeadError(f"The model gives {width} values per row but there are {len(labels or [])} class labels.")
        if head == "binary" and width > 2:
            raise HeadError(f"A binary head reads 1 value (or 2 probabilities) per row; the model gives {width}.")
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise HeadError(f"The model's output {chosen!r} is not float32; a head reads float32.")
        assert model_outputs is not None, "check_head refuses a head without model_outputs"
        head_graph = head_model(head, model_outputs, width, labels or [], opset_of(graph), graph.ir_version)
        graph = merge(graph, head_graph, [(chosen, HEAD_INPUT)])
    else:
        _strip_prefix(graph)
    onnx.save(graph, str(staged))
    return raw_inputs, labels


def _strip_prefix(graph: Any) -> None:
    """Names the outputs of a composed graph as the model named them (``model/dense`` -> ``dense``)."""
    from onnx import helper

    for output in graph.graph.output:
        if output.name.startswith(MODEL_PREFIX):
            inner, output.name = output.name, output.name.removeprefix(MODEL_PREFIX)
            graph.graph.node.append(helper.make_node("Identity", [inner], [output.name], name=output.name))


def export_model(
    model: Any,
    path: str | os.PathLike[str],
    name: str = "model",
    version: int | None = None,
    class_labels: Sequence[str] | None = None,
    feature_spec: Any = None,
    lineage: Mapping[str, Any] | None = None,
    head: str | None = None,
    model_outputs: str | None = None,
) -> Path:
    """Exports ``model`` as ``path/name/version/`` holding model.onnx, signature.json, lineage.json.

    With a ``feature_spec`` the bundle takes raw column values (strings included): the spec's
    preprocessing is built into the ONNX graph in front of the model. With a ``head`` its
    outputs are tf.estimator's prediction keys (``predictions``; or ``probabilities``,
    ``class_ids``, ``classes``, ``logits`` and, for binary, ``logistic``).

    Args:
        model: a built Keras model (any backend), an ``xgboost.Booster`` trained on the spec's
            encoded matrix (``feature_spec.input_names`` side by side, float32), or any object
            with ``export_parts()`` (a fitted ``lf.estimators`` estimator), which supplies the
            model, spec, head and class labels itself (and, for a booster, optionally
            ``feature_names``: the matrix's columns in order).
        path: the model base directory (what ``layerflow serve`` serves).
        name: the model's name in that directory and in URLs.
        version: the version number; the next free integer when None.
        class_labels: names of the output classes, recorded in the signature (and, with a
            head, returned as ``classes``).
        feature_spec: a fitted ``lf.feature_spec`` whose encoded inputs the model takes.
        lineage: where the model came from (run id, flags, source hash).
        head: ``"regression"``, ``"binary"`` or ``"multiclass"``: name the outputs after the
            prediction keys.
        model_outputs: what the model's output holds: ``"predictions"`` (regression),
            ``"logits"`` or ``"probabilities"``.

    Returns:
        The version folder written.

    Example:
        >>> lf.export_model(model, "models", name="fashion_mlp", class_labels=lf.datasets.FASHION_MNIST_CLASSES)
        >>> lf.export_model(model, "models", name="income", feature_spec=spec, head="binary",
        ...                 model_outputs="probabilities", class_labels=["low", "high"])
    """
    if hasattr(model, "export_parts") and not _is_keras_model(model):
        parts = _parts_of(model)
        model, feature_spec, head = parts["model"], parts["feature_spec"], parts["head"]
        model_outputs = parts["model_outputs"]
        class_labels = parts.get("class_labels") if class_labels is None else class_labels
        feature_names = parts.get("feature_names")  # a booster's matrix columns, in order
    else:
        feature_names = None
    target = version_dir(Path(path), name, version)
    # The whole version is written in a hidden folder beside it and renamed into place (as TF Serving's
    # exporters do): a server polling the model folder never sees a version without its signature.
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".exporting-"))
    try:
        staged = staging / MODEL_FILE
        raw_inputs, labels = _build_graph(model, staged, feature_spec, head, model_outputs, class_labels, feature_names)
        preprocessing = feature_spec.state() if feature_spec is not None else None
        write_json(
            staging / SIGNATURE_FILE, _signature(staged, labels or class_labels, preprocessing, raw_inputs, head)
        )
        write_json(staging / LINEAGE_FILE, dict(lineage or {}))
        _publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                target.parent.rmdir()  # only when still empty
        raise
    return target


def _publish(staging: Path, target: Path) -> None:
    """Renames a complete version folder into place; BundleError if that version appeared meanwhile."""
    staging.chmod(0o755)  # mkdtemp makes it 0o700
    try:
        os.rename(staging, target)
    except OSError as error:
        if target.exists():
            raise BundleError(
                f"{target} was written by someone else during this export; export again "
                "(the next free version is chosen) or pick another version."
            ) from None
        raise BundleError(f"Cannot move the exported version into {target} ({error}).") from None


def onnx_predict(bundle_dir: str | os.PathLike[str], inputs: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Runs an exported bundle with onnxruntime on named inputs (or one array for one input).

    Values are only converted to the signature's dtypes: no shape or NaN checks, unlike the server.
    """
    from layerflow.deploy.repository import load_model

    model = load_model(Path(bundle_dir))
    named = model.named(dict(inputs) if isinstance(inputs, Mapping) else inputs)
    feed = {}
    for spec in model.input_specs:
        if spec["name"] not in named:
            raise BundleError(
                f"Input {spec['name']!r} is missing; the model takes {[s['name'] for s in model.input_specs]}."
            )
        feed[spec["name"]] = np.asarray(
            named[spec["name"]], dtype=object if spec["dtype"] == "string" else spec["dtype"]
        )
    return list(model.predict(feed).values())
