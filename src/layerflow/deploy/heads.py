"""Prediction heads as ONNX graphs: a model's raw output in, tf.estimator's prediction keys out.

- ``regression``: ``predictions`` ``[batch, 1]``.
- ``binary``: ``logits`` and ``logistic`` ``[batch, 1]``, ``probabilities`` ``[batch, 2]``,
  ``class_ids`` (int64) and ``classes`` (the labels as strings) ``[batch, 1]``.
- ``multiclass``: ``logits`` and ``probabilities`` ``[batch, n_classes]``, ``class_ids`` and
  ``classes`` ``[batch, 1]``.

A model giving probabilities (a sigmoid or softmax output, or XGBoost) gets logits computed
back from them: ``log(p / (1 - p))`` for binary, ``log(p)`` for multiclass (softmax gives the
same probabilities back), with probabilities clipped to ``[1e-7, 1 - 1e-7]`` first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from layerflow.deploy.bundle import BundleError

HEADS = ("regression", "binary", "multiclass")
MODEL_OUTPUTS = ("logits", "probabilities", "predictions")
HEAD_INPUT = "head/input"
CLIP = 1e-7


class HeadError(BundleError):
    """A head, model output kind or class labels that do not fit together."""


def head_outputs(head: str) -> list[str]:
    """The output names of a head, in the order the bundle lists them.

    Example:
        >>> head_outputs("binary")
        ['logits', 'logistic', 'probabilities', 'class_ids', 'classes']
    """
    return {
        "regression": ["predictions"],
        "binary": ["logits", "logistic", "probabilities", "class_ids", "classes"],
        "multiclass": ["logits", "probabilities", "class_ids", "classes"],
    }[head]


def check_head(head: str, model_outputs: str, class_labels: Sequence[str] | None) -> None:
    """Raises HeadError unless ``head``, ``model_outputs`` and ``class_labels`` fit together.

    Example:
        >>> check_head("binary", "probabilities", ["no", "yes"])
    """
    if head not in HEADS:
        raise HeadError(f"head={head!r} is not known; expected one of {HEADS}.")
    if model_outputs not in MODEL_OUTPUTS:
        raise HeadError(f"model_outputs={model_outputs!r} is not known; expected one of {MODEL_OUTPUTS}.")
    if (head == "regression") != (model_outputs == "predictions"):
        raise HeadError(
            f"A {head} head takes model_outputs {'predictions' if head == 'regression' else 'logits or probabilities'}, "
            f"not {model_outputs!r}."
        )
    if head == "binary" and class_labels is not None and len(class_labels) != 2:
        raise HeadError(f"A binary head needs 2 class labels; got {len(class_labels)}: {list(class_labels)}.")


def head_model(head: str, model_outputs: str, width: int, labels: Sequence[str], opset: int, ir_version: int) -> Any:
    """The head as an ONNX model reading float32 ``head/input`` (``width`` values per row).

    Args:
        head: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        model_outputs: what the input holds: ``"predictions"``, ``"logits"`` or ``"probabilities"``.
        width: values per row of the input (1 or 2 for binary probabilities).
        labels: the class labels (``classes`` gives them back); empty for regression.
        opset, ir_version: the versions of the graph it is composed with.

    Returns:
        An ``onnx.ModelProto`` whose outputs are ``head_outputs(head)``.

    Example:
        >>> head = head_model("multiclass", "logits", 3, ["a", "b", "c"], opset=20, ir_version=9)
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []

    def const(name: str, value: Any, dtype: Any) -> str:
        array = np.asarray(value, dtype=dtype)
        initializers.append(numpy_helper.from_array(array, f"head/{name}"))
        return f"head/{name}"

    def node(op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    labels = [str(c) for c in labels]
    n_classes = len(labels)
    outputs: dict[str, tuple[int, list]] = {}
    x = HEAD_INPUT
    if head == "regression":
        node("Reshape", [x, const("column", [-1, 1], np.int64)], "predictions")
        outputs["predictions"] = (TensorProto.FLOAT, [None, 1])
    elif head == "binary":
        if model_outputs == "logits":
            node("Reshape", [x, const("column", [-1, 1], np.int64)], "logits")
            node("Sigmoid", ["logits"], "logistic")
        else:
            last_column = "head/last_column"  # p itself, or the last of [1 - p, p]
            node(
                "Slice",
                [x, const("start", [-1], np.int64), const("end", [2**62], np.int64), const("axis", [1], np.int64)],
                last_column,
            )
            node("Identity", [last_column], "logistic")
            clipped = node(
                "Clip",
                ["logistic", const("low", CLIP, np.float32), const("high", 1 - CLIP, np.float32)],
                "head/clipped",
            )
            complement = node("Sub", [const("one", 1.0, np.float32), clipped], "head/complement")
            node("Sub", [node("Log", [clipped], "head/log_p"), node("Log", [complement], "head/log_q")], "logits")
        node(
            "Concat",
            [node("Sub", [const("one_p", 1.0, np.float32), "logistic"], "head/negative"), "logistic"],
            "probabilities",
            axis=1,
        )
        greater = node("Greater", ["logistic", const("half", 0.5, np.float32)], "head/positive")
        node("Cast", [greater], "class_ids", to=TensorProto.INT64)
        outputs.update(
            logits=(TensorProto.FLOAT, [None, 1]),
            logistic=(TensorProto.FLOAT, [None, 1]),
            probabilities=(TensorProto.FLOAT, [None, 2]),
        )
    else:
        if model_outputs == "logits":
            node("Identity", [x], "logits")
            node("Softmax", ["logits"], "probabilities", axis=-1)
        else:
            node("Identity", [x], "probabilities")
            node("Log", [node("Clip", [x, const("low", CLIP, np.float32)], "head/clipped")], "logits")
        node("ArgMax", ["probabilities"], "class_ids", axis=1, keepdims=1)
        outputs.update(
            logits=(TensorProto.FLOAT, [None, n_classes]), probabilities=(TensorProto.FLOAT, [None, n_classes])
        )
    if head != "regression":
        node("Gather", [const("labels", labels, object), "class_ids"], "classes", axis=0)
        outputs.update(class_ids=(TensorProto.INT64, [None, 1]), classes=(TensorProto.STRING, [None, 1]))
    graph = helper.make_graph(
        nodes,
        "layerflow_head",
        [helper.make_tensor_value_info(HEAD_INPUT, TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info(name, *outputs[name]) for name in head_outputs(head)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="layerflow")
    model.ir_version = ir_version
    onnx.checker.check_model(model)
    return model
