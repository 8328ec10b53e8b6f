"""A fitted feature spec as an ONNX graph: raw columns in, the model's encoded inputs out.

Every step of ``FeatureSpec.transform`` has an ONNX form, so an exported bundle takes raw
values (strings included) and any ONNX consumer (onnxruntime, onnxruntime-web, Triton) needs
nothing else:

- numeric columns: cast to float32, a missing value (NaN) replaced by the fitted mean; a
  model taking them packed (``numeric_pack``, as the canned estimators do) gets them side by
  side through one ``Concat``;
- vocabulary columns: ``ai.onnx.ml.LabelEncoder``; values outside the vocabulary go to the
  out-of-vocabulary bucket(s) (``com.microsoft.MurmurHash3`` when there are several);
- identity columns: comparisons, out-of-range values to the extra id;
- bucketized columns: one comparison per boundary, summed (``np.digitize``);
- hashed and crossed columns: ``StringConcat`` with the separator, then ``MurmurHash3``
  modulo the bucket count (``layerflow.features.hashing`` computes the same in Python).

Raw inputs are one value per row (shape ``[batch]``): ``float64`` for numbers, ``int64``
for integer columns, ``string`` for text. The only step that cannot be written in ONNX
is turning a float into the text Python gives it (``41.0``), so a raw float column cannot
be a source of a vocabulary, hashed or crossed column (tf.estimator refuses that too:
bucketize the column first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layerflow.deploy.bundle import BundleError

OPSET = 20  # StringConcat
ML_OPSET = 3
MS_OPSET = 1
CROSS_SEPARATOR = "\x1f"
ENCODED_PREFIX = "encoded/"
NUMBER_KINDS = ("numeric", "identity", "bucketized")
# = layerflow.features.spec.PACKED_NUMERIC_INPUT (not imported: that module pulls in the training stack)
PACKED_NUMERIC_INPUT = "numeric_pack"


_FLOAT_AS_TEXT = (
    "Column {name!r} holds floats but the spec uses it as a category (vocabulary, hash or cross); "
    "a float's text is not the same in ONNX as in Python. Bucketize it (spec.bucketized({name!r}, ...)) "
    "and cross or hash the bucketized column, as tf.estimator requires."
)


class FeatureGraphError(BundleError):
    """A feature spec step that has no ONNX form (the message says which and what to do)."""


def _onnx():
    import onnx
    from onnx import TensorProto, helper

    return onnx, TensorProto, helper


def raw_input_dtypes(spec: Any) -> dict[str, str]:
    """The raw columns a fitted spec reads, with their dtypes ('float64', 'int64' or 'string').

    The dtypes come from the spec's dataset when it still has one; otherwise columns read as
    numbers are float64 and the others strings.

    Args:
        spec: a fitted ``FeatureSpec``.

    Returns:
        Raw column name -> dtype, numeric columns first.

    Example:
        >>> raw_input_dtypes(spec)
        {'age': 'float64', 'income': 'float64', 'city': 'string'}
    """
    numeric_use: set[str] = set(spec.numeric_columns)
    text_use: set[str] = set()
    for column in spec.categorical_columns.values():
        if column.kind in NUMBER_KINDS:
            numeric_use.add(column.source[0])
        elif column.kind == "crossed":
            text_use.update(s for s in column.source if _is_raw_source(spec, s))
        else:
            text_use.add(column.source[0])
    observed: dict[str, str] = {}
    dataset = getattr(spec, "dataset", None)
    if dataset is not None:
        first = next(dataset.chunks(), None)
        if isinstance(first, dict):
            for name, values in first.items():
                kind = np.asarray(values).dtype.kind
                observed[name] = "int64" if kind in "biu" else "float64" if kind == "f" else "string"
    dtypes = {}
    for name in [
        *dict.fromkeys(
            [*spec.numeric_columns, *sorted(numeric_use - set(spec.numeric_columns)), *sorted(text_use - numeric_use)]
        )
    ]:
        seen = observed.get(name)
        if name in numeric_use:
            if seen == "string":
                raise FeatureGraphError(f"Column {name!r} holds text but the spec reads it as numbers.")
            if name in text_use and seen != "int64":
                raise FeatureGraphError(_FLOAT_AS_TEXT.format(name=name))
            # numbers arrive as float64 (a missing one as NaN); integers used as text are cast back
            dtypes[name] = "float64"
        else:
            if seen == "float64":
                raise FeatureGraphError(_FLOAT_AS_TEXT.format(name=name))
            dtypes[name] = seen or "string"
    return dtypes


def _is_raw_source(spec: Any, source: str) -> bool:
    """Whether a crossed column's source is a raw column (transform prefers the raw column)."""
    if source in spec.numeric_columns:
        return True
    derived = spec.categorical_columns.get(source)
    if derived is None:
        return True
    return derived.kind != "crossed" and derived.source == [source]


@dataclass
class _Builder:
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    count: int = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"pre/{hint}/{self.count}"

    def node(self, op: str, inputs: list[str], hint: str, domain: str = "", **attributes: Any) -> str:
        _, _, helper = _onnx()
        out = self.name(hint)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attributes))
        return out

    def const(self, value: Any, dtype: Any, hint: str) -> str:
        from onnx import numpy_helper

        out = self.name(hint)
        array = np.asarray(value, dtype=dtype) if dtype is not object else np.asarray(value, dtype=object)
        self.initializers.append(numpy_helper.from_array(array, out))
        return out


def preprocessing_model(
    spec: Any,
    outputs: dict[str, int],
    opset: int = OPSET,
    ml_opset: int = ML_OPSET,
    ir_version: int | None = None,
    matrix: list[str] | None = None,
) -> Any:
    """The ONNX model taking the spec's raw columns and giving its encoded features.

    Args:
        spec: a fitted ``FeatureSpec``.
        outputs: encoded feature name -> ONNX element type wanted (e.g. ``TensorProto.INT32``);
            each comes out as ``encoded/<name>`` shaped ``[batch, 1]``.
        opset, ml_opset, ir_version: the versions of the model it will be composed with.
            ``numeric_pack`` (``PACKED_NUMERIC_INPUT``) is all numeric columns side by side,
            shaped ``[batch, n_numeric]`` (the canned estimators' numeric input).
        matrix: when given, instead one float32 output ``encoded/matrix`` shaped
            ``[batch, len(matrix)]``, the features side by side in this order.

    Returns:
        An ``onnx.ModelProto``.

    Example:
        >>> from onnx import TensorProto
        >>> graph = preprocessing_model(spec, {"city": TensorProto.INT32, "age": TensorProto.FLOAT})
        >>> [o.name for o in graph.graph.output]
        ['encoded/city', 'encoded/age']
    """
    onnx, TensorProto, helper = _onnx()
    raw = raw_input_dtypes(spec)
    types = {"float64": TensorProto.DOUBLE, "int64": TensorProto.INT64, "string": TensorProto.STRING}
    b = _Builder()
    one = b.const([1], np.int64, "axis1")

    def as_double(name: str) -> str:
        return name if raw[name] == "float64" else b.node("Cast", [name], f"{name}_double", to=TensorProto.DOUBLE)

    def as_text(name: str) -> str:
        if raw[name] == "string":
            return name
        whole = name if raw[name] == "int64" else b.node("Cast", [name], f"{name}_int", to=TensorProto.INT64)
        return b.node("Cast", [whole], f"{name}_text", to=TensorProto.STRING)

    def bucket(text: str, buckets: int, hint: str) -> str:
        hashed = b.node("MurmurHash3", [text], f"{hint}_murmur3", domain="com.microsoft", seed=0, positive=1)
        wide = b.node("Cast", [hashed], f"{hint}_hash64", to=TensorProto.INT64)
        return b.node("Mod", [wide, b.const(buckets, np.int64, f"{hint}_buckets")], f"{hint}_bucket")

    encoded: dict[str, str] = {}  # name -> int64 ids or float32 values, shape [batch]
    for name, column in spec.numeric_columns.items():
        values = b.node("Cast", [as_double(name)], f"{name}_float", to=TensorProto.FLOAT)
        missing = b.node("IsNaN", [values], f"{name}_missing")
        encoded[name] = b.node(
            "Where", [missing, b.const(column.mean, np.float32, f"{name}_mean"), values], f"{name}_imputed"
        )
    for name, column in spec.categorical_columns.items():
        if column.kind == "vocab":
            text = as_text(column.source[0])
            size = len(column.vocabulary)
            ids = b.node(
                "LabelEncoder",
                [text],
                f"{name}_lookup",
                domain="ai.onnx.ml",
                keys_strings=[str(v) for v in column.vocabulary],
                values_int64s=list(range(size)),
                default_int64=-1,
            )
            if column.num_oov_buckets == 1:
                oov = b.const(size, np.int64, f"{name}_oov")
            else:
                oov = b.node(
                    "Add",
                    [bucket(text, column.num_oov_buckets, f"{name}_oov"), b.const(size, np.int64, f"{name}_size")],
                    f"{name}_oov",
                )
            unseen = b.node("Less", [ids, b.const(0, np.int64, "zero")], f"{name}_unseen")
            encoded[name] = b.node("Where", [unseen, oov, ids], name)
        elif column.kind == "identity":
            values = as_double(column.source[0])
            low = b.node("GreaterOrEqual", [values, b.const(0.0, np.float64, "zero_f")], f"{name}_low")
            high = b.node("Less", [values, b.const(float(column.num_buckets), np.float64, f"{name}_n")], f"{name}_high")
            inside = b.node("And", [low, high], f"{name}_inside")  # NaN compares false on both
            whole = b.node("Floor", [values], f"{name}_floor")
            chosen = b.node(
                "Where",
                [inside, whole, b.const(float(column.num_buckets), np.float64, f"{name}_oov")],
                f"{name}_chosen",
            )
            encoded[name] = b.node("Cast", [chosen], name, to=TensorProto.INT64)
        elif column.kind == "bucketized":
            values = as_double(column.source[0])
            column_values = b.node("Unsqueeze", [values, one], f"{name}_column")
            above = b.node(
                "GreaterOrEqual",
                [column_values, b.const(column.boundaries, np.float64, f"{name}_bounds")],
                f"{name}_above",
            )
            counts = b.node(
                "ReduceSum",
                [b.node("Cast", [above], f"{name}_above64", to=TensorProto.INT64), one],
                f"{name}_count",
                keepdims=0,
            )
            missing = b.node("IsNaN", [values], f"{name}_missing")  # np.digitize puts NaN in the last bucket
            last = b.const(len(column.boundaries), np.int64, f"{name}_last")
            encoded[name] = b.node("Where", [missing, last, counts], name)
        elif column.kind in ("hash", "crossed"):
            if column.kind == "hash":
                text = as_text(column.source[0])
            else:
                parts = [
                    as_text(s)
                    if _is_raw_source(spec, s)
                    else b.node("Cast", [encoded[s]], f"{s}_text", to=TensorProto.STRING)
                    for s in column.source
                ]
                separator = b.const([CROSS_SEPARATOR], object, "separator")
                text = parts[0]
                for part in parts[1:]:
                    joined = b.node("StringConcat", [text, separator], f"{name}_join")
                    text = b.node("StringConcat", [joined, part], f"{name}_join")
            encoded[name] = bucket(text, column.num_buckets, name)
        else:
            raise FeatureGraphError(f"Categorical column {name!r} of kind {column.kind!r} has no ONNX form.")

    graph_outputs = []
    if matrix is not None:
        parts = [
            b.node("Unsqueeze", [b.node("Cast", [encoded[n]], f"{n}_f", to=TensorProto.FLOAT), one], f"{n}_col")
            for n in matrix
        ]
        out = f"{ENCODED_PREFIX}matrix"
        b.nodes.append(helper.make_node("Concat", parts, [out], name=out, axis=1))
        graph_outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, len(matrix)]))
    else:
        for name, elem_type in outputs.items():
            if name == PACKED_NUMERIC_INPUT and name not in encoded and spec.numeric_columns:
                # the numeric columns side by side, as the canned estimators' models take them
                parts = [b.node("Unsqueeze", [encoded[n], one], f"{n}_col") for n in spec.numeric_columns]
                packed = parts[0] if len(parts) == 1 else b.node("Concat", parts, f"{name}_concat", axis=1)
                out = ENCODED_PREFIX + name
                b.nodes.append(helper.make_node("Cast", [packed], [out], name=out, to=elem_type))
                graph_outputs.append(helper.make_tensor_value_info(out, elem_type, [None, len(parts)]))
                continue
            if name not in encoded:
                raise FeatureGraphError(
                    f"The model takes an input {name!r} that the feature spec does not produce; "
                    f"it produces {sorted(encoded)}."
                )
            cast = b.node("Cast", [encoded[name]], f"{name}_typed", to=elem_type)
            out = ENCODED_PREFIX + name
            b.nodes.append(helper.make_node("Unsqueeze", [cast, one], [out], name=out))
            graph_outputs.append(helper.make_tensor_value_info(out, elem_type, [None, 1]))
    graph_inputs = [helper.make_tensor_value_info(name, types[dtype], [None]) for name, dtype in raw.items()]
    graph = helper.make_graph(b.nodes, "layerflow_preprocessing", graph_inputs, graph_outputs, b.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", opset),
            helper.make_opsetid("ai.onnx.ml", ml_opset),
            helper.make_opsetid("com.microsoft", MS_OPSET),
        ],
        producer_name="layerflow",
    )
    if ir_version is not None:
        model.ir_version = ir_version
    onnx.checker.check_model(model)
    return model


def raw_input_signature(spec: Any) -> list[dict[str, Any]]:
    """signature.json's description of the raw inputs: name, dtype, shape and what the column is.

    Args:
        spec: a fitted ``FeatureSpec``.

    Returns:
        One dict per raw input: ``name``, ``dtype``, ``shape`` (``[None]``), ``missing`` (whether
        a missing value is accepted), ``feature`` and, for vocabulary columns, ``vocabulary``.

    Example:
        >>> raw_input_signature(spec)[0]
        {'name': 'age', 'dtype': 'float64', 'shape': [None], 'missing': True, 'feature': 'numeric'}
    """
    described = []
    for name, dtype in raw_input_dtypes(spec).items():
        entry: dict[str, Any] = {
            "name": name,
            "dtype": dtype,
            "shape": [None],
            "missing": dtype != "int64",
        }  # NaN is imputed or bucketed; "" is out of vocabulary
        vocabularies = [
            c.vocabulary for c in spec.categorical_columns.values() if c.kind == "vocab" and c.source == [name]
        ]
        entry["feature"] = "categorical" if dtype == "string" else "numeric"
        if vocabularies:
            entry["vocabulary"] = [str(v) for v in vocabularies[0]]
        described.append(entry)
    return described
