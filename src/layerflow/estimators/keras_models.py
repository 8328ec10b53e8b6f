"""The Keras graphs of the canned estimators, built over a fitted spec's encoded inputs.

The canned estimators' models take all numeric columns as one packed float input
(``numeric_pack``, shaped (n, n_numeric), scaled inside the model) and one (n, 1) int input
per categorical column (``packed_inputs``); a custom ``Estimator``'s model_fn gets the inputs
``spec.keras_inputs()`` declares, one (n, 1) tensor per encoded feature (``spec_inputs``).
Models return logits (classifiers) or predictions (regressors). The linear part is tf.estimator's ``linear_model``: a weight per numeric
value and per category id (an id's weight is a one-wide embedding), summed with a bias.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from layerflow.estimators.errors import EstimatorError

# Categorical columns with more ids than this enter a DNN through an embedding, not one-hot.
ONE_HOT_MAX_DEPTH = 16
OPTIMIZERS = {"adagrad": "Adagrad", "ftrl": "Ftrl", "adam": "Adam", "rmsprop": "RMSprop", "sgd": "SGD"}


def safe_name(name: str) -> str:
    """A Keras layer name for a column name (Keras refuses '/' and spaces in names)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def spec_inputs(keras: Any, spec: Any) -> tuple[dict[str, Any], Any]:
    """The spec's Keras inputs and its dense tensor (None when it declares no dense part)."""
    state = spec.state()
    names = [c["name"] for c in state["numeric"] + state["categorical"]]
    if all(safe_name(n) == n for n in names) and (state["numeric"] or state["dense"]):
        return spec.keras_inputs()
    # no dense part declared, or column names Keras refuses: the same inputs, named safely
    inputs = {c["name"]: keras.Input(shape=(1,), name=safe_name(c["name"]), dtype="float32") for c in state["numeric"]}
    inputs.update(
        {c["name"]: keras.Input(shape=(1,), name=safe_name(c["name"]), dtype="int32") for c in state["categorical"]}
    )
    return inputs, None


def packed_inputs(keras: Any, spec: Any) -> tuple[dict[str, Any], Any, Any]:
    """The canned estimators' inputs: ``(inputs, dense, numeric)``.

    ``inputs`` holds ``numeric_pack`` (all numeric columns, in the spec's order) and one int
    input per categorical column; ``numeric`` is the pack scaled column by column (None without
    numeric columns); ``dense`` is the spec's declared dense tensor (scaled numbers, indicator
    and embedding columns), or None when it declares no indicator/embedding column.
    """
    from layerflow.estimators.layers import Standardize
    from layerflow.features.spec import PACKED_NUMERIC_INPUT

    state = spec.state()
    inputs: dict[str, Any] = {}
    numeric = None
    if state["numeric"]:
        packed = keras.Input(shape=(len(state["numeric"]),), name=PACKED_NUMERIC_INPUT, dtype="float32")
        inputs[PACKED_NUMERIC_INPUT] = packed
        scales = [spec.numeric_columns[c["name"]].scale() for c in state["numeric"]]
        numeric = Standardize([o for o, _ in scales], [d for _, d in scales], name="numeric_scaled")(packed)
    inputs.update(
        {c["name"]: keras.Input(shape=(1,), name=safe_name(c["name"]), dtype="int32") for c in state["categorical"]}
    )
    if not state["dense"]:
        return inputs, None, numeric
    parts = [numeric] if numeric is not None else []
    for dense in spec.dense_columns:
        depth = spec.categorical_columns[dense.column].depth
        ids, name = inputs[dense.column], safe_name(dense.output_name)
        if dense.kind == "indicator":
            parts.append(keras.layers.CategoryEncoding(depth, output_mode="one_hot", name=name)(ids))
        else:
            embedded = keras.layers.Embedding(depth, dense.dimension, name=name)(ids)
            parts.append(keras.layers.Flatten(name=f"{name}_flat")(embedded))
    dense_tensor = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="dense_features")(parts)
    return inputs, dense_tensor, numeric


def can_pack(spec: Any) -> bool:
    """Whether the spec's columns leave the packed input's name free."""
    from layerflow.features.spec import PACKED_NUMERIC_INPUT

    state = spec.state()
    return all(safe_name(c["name"]) != PACKED_NUMERIC_INPUT for c in state["numeric"] + state["categorical"])


def _scaled(keras: Any, tensor: Any, column: dict[str, Any], prefix: str) -> Any:
    normalizer = column.get("normalizer")
    if normalizer == "standard":
        offset, divisor = column["mean"], column["std"] or 1.0
    elif normalizer == "minmax":
        offset, divisor = column["min"], (column["max"] - column["min"]) or 1.0
    else:
        return tensor
    return keras.layers.Rescaling(
        1.0 / divisor, offset=-offset / divisor, name=f"{prefix}_{safe_name(column['name'])}_scaled"
    )(tensor)


def regularizer(keras: Any, l1: float, l2: float) -> Any:
    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


def linear_logits(
    keras: Any,
    inputs: dict[str, Any],
    spec: Any,
    units: int,
    columns: Sequence[str] | None,
    l1: float = 0.0,
    l2: float = 0.0,
    packed: Any = None,
) -> Any:
    """A weighted sum of the numeric values and of one weight per category id, plus a bias.

    ``packed`` is the scaled numeric pack (``packed_inputs``); without it the numeric columns
    are read from their own inputs.
    """
    state = spec.state()
    chosen = set(columns) if columns is not None else None
    reg = regularizer(keras, l1, l2)
    parts = []
    if packed is not None:
        positions = [i for i, c in enumerate(state["numeric"]) if chosen is None or c["name"] in chosen]
        if len(positions) == len(state["numeric"]):
            numeric = [packed]
        elif positions:
            from layerflow.estimators.layers import SelectColumns

            numeric = [SelectColumns(positions, name="linear_numeric_chosen")(packed)]
        else:
            numeric = []
    else:
        numeric = [
            _scaled(keras, inputs[c["name"]], c, "linear")
            for c in state["numeric"]
            if chosen is None or c["name"] in chosen
        ]
    if numeric:
        joined = numeric[0] if len(numeric) == 1 else keras.layers.Concatenate(name="linear_numeric")(numeric)
        parts.append(
            keras.layers.Dense(units, use_bias=False, kernel_regularizer=reg, name="linear_numeric_weights")(joined)
        )
    for column in state["categorical"]:
        if chosen is not None and column["name"] not in chosen:
            continue
        weights = keras.layers.Embedding(
            column["depth"],
            units,
            embeddings_initializer="zeros",
            embeddings_regularizer=reg,
            name=f"linear_{safe_name(column['name'])}_weights",
        )
        parts.append(
            keras.layers.Flatten(name=f"linear_{safe_name(column['name'])}_flat")(weights(inputs[column["name"]]))
        )
    if not parts:
        raise EstimatorError("The linear part has no columns: the spec has none of linear_feature_columns.")
    summed = parts[0] if len(parts) == 1 else keras.layers.Add(name="linear_sum")(parts)
    from layerflow.estimators.layers import LinearBias

    return LinearBias(name="linear_logits")(summed)


def auto_dense(keras: Any, inputs: dict[str, Any], spec: Any, seed: int | None, packed: Any = None) -> Any:
    """A dense tensor when the spec declares none: numbers scaled (``packed``, the scaled numeric
    pack, when given), small vocabularies one-hot, larger ones through an embedding of about
    6 * depth ** 0.25 dimensions."""
    state = spec.state()
    if packed is not None:
        parts = [packed]
    else:
        parts = [_scaled(keras, inputs[c["name"]], c, "dnn") for c in state["numeric"]]
    for column in state["categorical"]:
        depth, ids = column["depth"], inputs[column["name"]]
        if depth <= ONE_HOT_MAX_DEPTH:
            parts.append(
                keras.layers.CategoryEncoding(
                    depth, output_mode="one_hot", name=f"dnn_{safe_name(column['name'])}_onehot"
                )(ids)
            )
        else:
            dimension = min(64, max(2, int(math.ceil(6 * depth**0.25))))
            embedded = keras.layers.Embedding(
                depth,
                dimension,
                name=f"dnn_{safe_name(column['name'])}_embedding",
                embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed),
            )(ids)
            parts.append(keras.layers.Flatten(name=f"dnn_{safe_name(column['name'])}_flat")(embedded))
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="dnn_features")(parts)


def dnn_logits(
    keras: Any,
    dense: Any,
    units: int,
    hidden_units: Sequence[int],
    activation: str,
    dropout: float | None,
    batch_norm: bool,
    l1: float,
    l2: float,
    seed: int | None,
) -> Any:
    """Hidden layers (with optional batch norm and dropout) and a final linear layer."""
    reg = regularizer(keras, l1, l2)
    x = dense
    for i, width in enumerate(hidden_units):
        x = keras.layers.Dense(
            width,
            kernel_regularizer=reg,
            name=f"hiddenlayer_{i}",
            kernel_initializer=keras.initializers.GlorotUniform(seed=None if seed is None else seed + i),
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"batchnorm_{i}")(x)
        x = keras.layers.Activation(activation, name=f"hiddenlayer_{i}_{activation}")(x)
        if dropout and seed is None:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        elif dropout:  # seeded: masks from torch's generator, seeded per epoch by the estimator
            from layerflow.estimators.layers import EpochSeededDropout

            assert seed is not None, "the branch above takes dropout when seed is None"
            x = EpochSeededDropout(dropout, seed=seed + 100 + i, name=f"dropout_{i}")(x)
    return keras.layers.Dense(
        units,
        kernel_regularizer=reg,
        name="dnn_logits",
        kernel_initializer=keras.initializers.GlorotUniform(seed=None if seed is None else seed + 99),
    )(x)


def make_optimizer(keras: Any, optimizer: Any, learning_rate: float) -> Any:
    """A Keras optimizer from a tf.estimator name (Adagrad, Ftrl, Adam, RMSProp, SGD) or as given."""
    if not isinstance(optimizer, str):
        return optimizer
    class_name = OPTIMIZERS.get(optimizer.lower())
    if class_name is None:
        raise EstimatorError(
            f"optimizer={optimizer!r} is not known; expected one of {sorted(OPTIMIZERS.values())} or a Keras optimizer."
        )
    return getattr(keras.optimizers, class_name)(learning_rate=learning_rate)


def loss_for(keras: Any, head_kind: str) -> Any:
    if head_kind == "binary":
        return keras.losses.BinaryCrossentropy(from_logits=True)
    if head_kind == "multiclass":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return keras.losses.MeanSquaredError()


# Keras's crossentropy losses by name: given as a string or a function they read probabilities.
_CROSSENTROPY_NAMES = ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy")


def _described(value: Any) -> str:
    """A short description of what a model_fn returned, for an error message."""
    text = repr(value)
    return f"{type(value).__name__} ({text[:60] + '...' if len(text) > 60 else text})"


def check_output_width(tensor: Any, units: int, head_kind: str) -> None:
    """Raises ``EstimatorError`` unless ``tensor``'s last dimension is the head's width."""
    width = tuple(tensor.shape)[-1] if len(tuple(tensor.shape)) > 1 else 1
    if width != units:
        needs = {"regression": "1 (the prediction)", "binary": "1 (a logit or a probability)"}.get(
            head_kind, f"{units} (one logit or probability per class)"
        )
        raise EstimatorError(
            f"model_fn's output has width {width}, but the {head_kind} head takes a width of {needs}; "
            "end the model with a Dense layer of params['n_outputs'] units."
        )


def model_from_fn(keras: Any, result: Any, inputs: dict[str, Any], units: int, head_kind: str) -> tuple[Any, bool]:
    """The Keras model a custom Estimator's ``model_fn`` described, and whether it is compiled.

    Args:
        keras: the keras module.
        result: what ``model_fn`` returned: an output tensor over ``inputs`` (logits for a
            classifier, predictions for a regressor), or a ``keras.Model`` built on ``inputs``
            with one output (compiled or not).
        inputs: the spec's Keras inputs that ``model_fn`` was given.
        units: the head's output width; head_kind: ``"regression"``, ``"binary"``, ``"multiclass"``.

    Returns:
        ``(model, compiled)``: an uncompiled model is compiled by the estimator; a compiled
        one keeps its optimizer, loss and metrics.

    Example:
        >>> model, compiled = model_from_fn(keras, model_fn(inputs, dense, params), inputs, 3, "multiclass")
    """
    given = {id(t) for t in inputs.values()}
    if isinstance(result, keras.Model):
        foreign = [getattr(t, "name", "?") for t in keras.tree.flatten(result.inputs) if id(t) not in given]
        if foreign:
            raise EstimatorError(
                f"model_fn returned a keras.Model whose inputs {foreign} are not the spec's inputs; "
                f"build the Model on the inputs model_fn is given ({sorted(inputs)})."
            )
        outputs = keras.tree.flatten(result.outputs)
        if len(outputs) != 1:
            raise EstimatorError(
                f"model_fn returned a keras.Model with {len(outputs)} outputs "
                f"{list(result.output_names)}; an estimator trains one output against its label: "
                "return a Model with one output."
            )
        check_output_width(outputs[0], units, head_kind)
        return result, bool(getattr(result, "compiled", False))
    if isinstance(result, keras.KerasTensor):
        check_output_width(result, units, head_kind)
        return keras.Model(inputs=inputs, outputs=result, name="estimator"), False
    raise EstimatorError(
        f"model_fn returned {_described(result)}; expected the output tensor (logits for a "
        "classifier, predictions for a regressor) or a keras.Model built on the inputs it is given."
    )


def output_kind(model: Any, head_kind: str) -> str:
    """What a custom model's output holds: ``"predictions"`` (regression), ``"logits"`` or
    ``"probabilities"`` (classifiers), read from its compiled loss (``from_logits``; Keras's
    crossentropy losses given by name or as functions read probabilities), else from the output's
    name ("logits" or "probabilities"), else logits."""
    if head_kind == "regression":
        return "predictions"
    loss = getattr(model, "loss", None)
    from_logits = getattr(loss, "from_logits", None)
    if from_logits is None:
        name = loss if isinstance(loss, str) else getattr(loss, "__name__", None)
        if name in _CROSSENTROPY_NAMES:
            from_logits = False
    if from_logits is not None:
        return "logits" if from_logits else "probabilities"
    names = list(getattr(model, "output_names", None) or [])
    return "probabilities" if names == ["probabilities"] else "logits"
