"""Composing ONNX graphs end to end: preprocessing -> model -> head, as one bundle graph."""

from __future__ import annotations

from typing import Any

from layerflow.deploy.bundle import BundleError
from layerflow.deploy.preprocessing import ML_OPSET, OPSET

MODEL_PREFIX = "model/"
IR_VERSION = 9  # what onnxruntime-web 1.23 and Keras' exporter use


def opset_of(model: Any, domain: str = "") -> int:
    """The opset version ``model`` imports for ``domain`` (0 when it does not).

    Example:
        >>> opset_of(onnx.load("model.onnx"), "ai.onnx.ml")
        3
    """
    return max(
        (o.version for o in model.opset_import if o.domain in ((domain, "ai.onnx") if not domain else (domain,))),
        default=0,
    )


def upgrade(model: Any, opset: int = OPSET, ml_opset: int = ML_OPSET) -> Any:
    """``model`` at default-domain ``opset`` (converted when older) and ai.onnx.ml ``ml_opset`` at least.

    Example:
        >>> model = upgrade(onnx.load("trees.onnx"))
    """
    from onnx import helper, version_converter

    if not any(node.domain in ("", "ai.onnx") for node in model.graph.node):
        # no default-domain operator (e.g. a tree ensemble): only the import is set
        others = [(o.domain, o.version) for o in model.opset_import if o.domain not in ("", "ai.onnx")]
        del model.opset_import[:]
        model.opset_import.extend([*(helper.make_opsetid(d, v) for d, v in others), helper.make_opsetid("", opset)])
    elif opset_of(model) < opset:
        try:
            model = version_converter.convert_version(model, opset)
        except Exception as error:  # noqa: BLE001 - the converter raises bare RuntimeErrors
            raise BundleError(
                f"The model's ONNX graph (opset {opset_of(model)}) cannot be converted to opset "
                f"{opset}, which the feature preprocessing needs ({error})."
            ) from None
    for entry in model.opset_import:
        if entry.domain == "ai.onnx.ml" and entry.version < ml_opset:
            entry.version = ml_opset  # the ml operators used by converters are unchanged up to opset 3
    model.ir_version = max(model.ir_version, IR_VERSION)
    return model


def merge(first: Any, second: Any, io_map: list[tuple[str, str]]) -> Any:
    """``second`` fed by ``first``'s outputs named in ``io_map``; the other outputs of ``first`` are dropped.

    Both must import the same opset versions per domain (see ``upgrade``).

    Example:
        >>> whole = merge(preprocessing, prefixed(model), [("encoded/age", "model/age")])
    """
    import onnx
    from onnx import compose

    opsets: dict[str, int] = {}
    for model in (first, second):
        for entry in model.opset_import:
            domain = "" if entry.domain == "ai.onnx" else entry.domain
            opsets[domain] = max(opsets.get(domain, 0), entry.version)
    ir_version = max(first.ir_version, second.ir_version)
    for model in (first, second):
        del model.opset_import[:]
        model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets.items())
        model.ir_version = ir_version
    outputs = [o.name for o in second.graph.output]
    merged = compose.merge_models(first, second, io_map=io_map, outputs=outputs)
    onnx.checker.check_model(merged)
    return merged


def prefixed(model: Any, prefix: str = MODEL_PREFIX) -> Any:
    """``model`` with every name prefixed, so it cannot clash with the graphs composed around it.

    Example:
        >>> [i.name for i in prefixed(model).graph.input]
        ['model/age', 'model/city']
    """
    from onnx import compose

    return compose.add_prefix(model, prefix)
