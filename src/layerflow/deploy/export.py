"""Exporting a trained model to an ONNX bundle that serves with no training code behind it.

Exporters are tried in order; each knows one family of models. Keras models are the first;
classic estimators and boosted trees add theirs to ``EXPORTERS``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

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

_ONNX_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int32)": "int32",
               "tensor(int64)": "int64", "tensor(bool)": "bool", "tensor(string)": "string"}


def _is_keras_model(model: Any) -> bool:
    return any(cls.__module__.startswith("keras") and cls.__name__ in ("Model", "Layer") for cls in type(model).__mro__)


def _export_keras(model: Any, target: Path) -> None:
    if not getattr(model, "_called", False):
        # Keras traces a model it has seen called; a declared-but-unused one is called on zeros.
        if not getattr(model, "inputs", None):
            raise BundleError("The Keras model has no known inputs; train it or call it on data before exporting.")
        import keras

        def zeros(tensor):
            return np.zeros([1 if d is None else d for d in tensor.shape], dtype=tensor.dtype)

        structure = model.inputs[0] if len(model.inputs) == 1 else getattr(model, "_inputs_struct", model.inputs)
        model(keras.tree.map_structure(zeros, structure), training=False)
    model.export(str(target), format="onnx", verbose=False)
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


# (can this exporter handle the model?, write the ONNX file)
EXPORTERS: list[tuple[Callable[[Any], bool], Callable[[Any, Path], None]]] = [(_is_keras_model, _export_keras)]


def _signature(onnx_path: Path, class_labels: Sequence[str] | None,
               preprocessing: Mapping[str, Any] | None) -> dict[str, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def describe(node):
        # Keras names the ONNX inputs after its own (named) inputs, so the names users know work.
        return {"name": node.name, "dtype": _ONNX_TYPES.get(node.type, node.type),
                "shape": [d if isinstance(d, int) else None for d in node.shape]}

    signature = {
        "format": BUNDLE_FORMAT,
        "inputs": [describe(node) for node in session.get_inputs()],
        "outputs": [describe(node) for node in session.get_outputs()],
    }
    if class_labels is not None:
        signature["class_labels"] = [str(label) for label in class_labels]
    if preprocessing is not None:
        signature["preprocessing"] = dict(preprocessing)
    return signature


def export_model(
    model: Any,
    path: str | os.PathLike[str],
    name: str = "model",
    version: int | None = None,
    class_labels: Sequence[str] | None = None,
    feature_spec: Any = None,
    lineage: Mapping[str, Any] | None = None,
) -> Path:
    """Exports ``model`` as ``path/name/version/`` holding model.onnx, signature.json, lineage.json.

    Args:
        model: a built Keras model (any backend).
        path: the model base directory (what ``layerflow serve`` serves).
        name: the model's name in that directory and in URLs.
        version: the version number; the next free integer when None.
        class_labels: names of the output classes, recorded in the signature.
        feature_spec: a fitted ``lf.feature_spec``; its preprocessing goes into the signature.
        lineage: where the model came from (run id, flags, source hash).

    Returns:
        The version folder written.

    Example:
        >>> lf.export_model(model, "models", name="fashion_mlp", class_labels=lf.datasets.FASHION_MNIST_CLASSES)
    """
    exporter = next((write for can, write in EXPORTERS if can(model)), None)
    if exporter is None:
        raise BundleError(f"No exporter knows a {type(model).__module__}.{type(model).__name__}; "
                          "layerflow exports Keras models.")
    target = version_dir(Path(path), name, version)
    with tempfile.TemporaryDirectory(dir=Path(path)) if Path(path).is_dir() else tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / MODEL_FILE
        exporter(model, staged)
        preprocessing = feature_spec.state() if feature_spec is not None else None
        signature = _signature(staged, class_labels, preprocessing)
        target.mkdir(parents=True)
        staged.replace(target / MODEL_FILE)
    write_json(target / SIGNATURE_FILE, signature)
    write_json(target / LINEAGE_FILE, dict(lineage or {}))
    return target


def onnx_predict(bundle_dir: str | os.PathLike[str], inputs: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Runs an exported bundle with onnxruntime on named inputs (or one array for one input).

    Values are only converted to the signature's dtypes: no shape or NaN checks, unlike the server.
    """
    from layerflow.deploy.repository import load_model

    model = load_model(bundle_dir)
    named = model.named(dict(inputs) if isinstance(inputs, Mapping) else inputs)
    feed = {}
    for spec in model.input_specs:
        if spec["name"] not in named:
            raise BundleError(f"Input {spec['name']!r} is missing; the model takes {[s['name'] for s in model.input_specs]}.")
        feed[spec["name"]] = np.asarray(named[spec["name"]], dtype=spec["dtype"])
    return list(model.predict(feed).values())
