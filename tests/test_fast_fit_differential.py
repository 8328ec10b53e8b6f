"""The fast path against Keras's own, over varied Keras example-style models: same numbers, or a clean fallback.

Each model is built twice with the same seed and trained, evaluated and used to predict on
small data: once on the fast path and once with LAYERFLOW_FAST_FIT=0 (Keras's own step, which
gives the same numbers run after run). A model the fast path takes must give Keras's History,
weights, evaluation and predictions; a model it cannot take must fall back with a reason that
names the cause. Never a silent difference.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

from layerflow import keras
from layerflow.fastfit import fast_fit_status

ops = keras.ops
RNG = np.random.default_rng(0)
N = 48


def _images(channels: int = 1) -> np.ndarray:
    return RNG.random((N, 8, 8, channels)).astype("float32")


def _labels(classes: int = 3) -> np.ndarray:
    return RNG.integers(0, classes, N)


@dataclass
class Case:
    build: Callable[[], Any]
    x: Any
    y: Any
    fit: dict = field(default_factory=dict)
    fallback: str | None = None  # a pattern of the reason the fast path must give, when it must not train


class ComputeSum(keras.layers.Layer):
    """Keras's guide's stateful layer: a non-trainable running total assigned inside call()."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.total = self.add_weight(shape=(units,), initializer="zeros", trainable=False, name="total")

    def call(self, inputs):
        self.total.assign_add(ops.mean(inputs, axis=0))
        return inputs + 0.01 * self.total


class ActivityPenalty(keras.layers.Layer):
    """A layer adding a loss of its activations with add_loss (Keras's guide's example)."""

    def call(self, inputs):
        self.add_loss(0.1 * ops.mean(ops.square(inputs)))
        return inputs


class Linear(keras.layers.Layer):
    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


class MeanSquaredLogits(keras.metrics.Metric):
    """A custom stateful metric (sum and count variables)."""

    def __init__(self, name="mean_squared_logits", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(ops.sum(ops.square(y_pred)))
        self.count.assign_add(ops.cast(ops.size(y_pred), "float32"))

    def result(self):
        return self.total / self.count


class TorchConstant(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scale = torch.full((6,), 0.5)

    def call(self, inputs):
        return inputs * self.scale


class Branchy(keras.layers.Layer):
    def call(self, inputs):
        if float(ops.sum(inputs)) > 0:  # data-dependent Python
            return inputs * 2
        return inputs


class CustomStep(keras.Model):
    def train_step(self, data):
        return super().train_step(data)


def _compile(model, loss="sparse_categorical_crossentropy", optimizer="adam", metrics=("accuracy",), **options):
    model.compile(
        loss=loss, optimizer=optimizer, metrics=metrics if isinstance(metrics, dict) else list(metrics), **options
    )
    return model


def conv():
    return _compile(
        keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Conv2D(4, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
    )


def separable_batchnorm():
    return _compile(
        keras.Sequential(
            [
                keras.Input((8, 8, 2)),
                keras.layers.SeparableConv2D(4, 3),
                keras.layers.BatchNormalization(),
                keras.layers.ReLU(),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(3),
            ]
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def transformer():
    inputs = keras.Input((5, 8))
    attended = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs)
    x = keras.layers.LayerNormalization()(inputs + attended)
    x = keras.layers.LayerNormalization()(x + keras.layers.Dense(8, activation="gelu")(x))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling1D()(x))
    return _compile(keras.Model(inputs, outputs))


def lstm():
    return _compile(
        keras.Sequential([keras.Input((5, 4)), keras.layers.LSTM(6), keras.layers.Dense(3, activation="softmax")])
    )


def gru_rmsprop():
    return _compile(
        keras.Sequential([keras.Input((5, 4)), keras.layers.GRU(6), keras.layers.Dense(3, activation="softmax")]),
        optimizer="rmsprop",
    )


def embedding():
    return _compile(
        keras.Sequential(
            [
                keras.Input((6,), dtype="int32"),
                keras.layers.Embedding(20, 4),
                keras.layers.GlobalAveragePooling1D(),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
    )


def custom_layer_and_metric():
    model = keras.Sequential([keras.Input((6,)), Linear(8), keras.layers.Activation("tanh"), Linear(3)])
    return _compile(
        model,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer="sgd",
        metrics=[MeanSquaredLogits(), "accuracy"],
    )


def add_loss_in_call():
    return _compile(
        keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(8, activation="relu"),
                ActivityPenalty(),
                keras.layers.Dense(3, activation="softmax"),
            ]
        ),
        optimizer="sgd",
    )


def activity_regularizer():
    return _compile(
        keras.Sequential([keras.Input((6,)), keras.layers.Dense(1, activity_regularizer=keras.regularizers.L2(1.0))]),
        loss="mse",
        metrics=["mae"],
    )


def stateful_layer():
    return _compile(
        keras.Sequential([keras.Input((6,)), keras.layers.Dense(6), ComputeSum(6), keras.layers.Dense(1)]),
        loss="mse",
        optimizer="sgd",
        metrics=["mae"],
    )


def multi_input_output():
    left, right = keras.Input((6,), name="left"), keras.Input((3,), name="right")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([left, right]))
    kind = keras.layers.Dense(3, activation="softmax", name="kind")(hidden)
    amount = keras.layers.Dense(1, name="amount")(hidden)
    return _compile(
        keras.Model([left, right], {"kind": kind, "amount": amount}),
        loss={"kind": "sparse_categorical_crossentropy", "amount": "mse"},
        loss_weights={"kind": 1.0, "amount": 0.5},
        metrics={"kind": ["accuracy"], "amount": ["mae"]},
    )


def deep_relu_batchnorm_adam():
    return _compile(
        keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.BatchNormalization(),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dropout(0.3),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
    )


def weighted_dropout():
    return _compile(
        keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dropout(0.5),
                keras.layers.Dense(3, activation="softmax"),
            ]
        ),
        optimizer=keras.optimizers.Adam(1e-2),
        weighted_metrics=["accuracy"],
    )


def conv1d_text():
    return _compile(
        keras.Sequential(
            [
                keras.Input((12,), dtype="int32"),
                keras.layers.Embedding(30, 6),
                keras.layers.Conv1D(8, 3, activation="relu"),
                keras.layers.GlobalMaxPooling1D(),
                keras.layers.Dense(3, activation="softmax"),
            ]
        ),
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    )


def residual_adamw():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(6, activation="relu")(inputs)
    x = keras.layers.Add()([inputs, keras.layers.Dropout(0.2)(hidden)])
    outputs = keras.layers.Dense(1)(keras.layers.LayerNormalization()(x))
    return _compile(keras.Model(inputs, outputs), loss=keras.losses.Huber(), optimizer="adamw", metrics=["mse"])


def torch_constant():
    return _compile(keras.Sequential([keras.Input((6,)), TorchConstant(), keras.layers.Dense(3, activation="softmax")]))


def data_dependent_python():
    return _compile(keras.Sequential([keras.Input((6,)), Branchy(), keras.layers.Dense(3, activation="softmax")]))


def custom_train_step():
    inputs = keras.Input((6,))
    return _compile(CustomStep(inputs, keras.layers.Dense(3, activation="softmax")(inputs)))


TABULAR = RNG.random((N, 6)).astype("float32")
SEQUENCES = RNG.random((N, 5, 4)).astype("float32")
CASES = {
    "conv": Case(conv, _images(), _labels()),
    "separable_conv_batchnorm": Case(separable_batchnorm, _images(2), _labels()),
    "transformer_block": Case(transformer, RNG.random((N, 5, 8)).astype("float32"), _labels()),
    # Recurrent layers train on Keras's path (their traced gradients differ in the last bits);
    # evaluate and predict stay fast and exact.
    "lstm": Case(lstm, SEQUENCES, _labels(), fallback=r"recurrent layer\(s\) lstm"),
    "gru_rmsprop": Case(gru_rmsprop, SEQUENCES, _labels(), fallback=r"recurrent layer\(s\) gru"),
    "embedding": Case(embedding, RNG.integers(0, 20, (N, 6)).astype("int32"), _labels()),
    "custom_layer_and_metric": Case(custom_layer_and_metric, TABULAR, _labels()),
    "add_loss_in_call": Case(add_loss_in_call, TABULAR, _labels()),
    "activity_regularizer": Case(activity_regularizer, TABULAR, RNG.random((N, 1)).astype("float32")),
    "stateful_layer": Case(stateful_layer, TABULAR, RNG.random((N, 1)).astype("float32")),
    "multi_input_output": Case(
        multi_input_output,
        {"left": TABULAR, "right": TABULAR[:, :3] * 2},
        {"kind": _labels(), "amount": RNG.random((N, 1)).astype("float32")},
    ),
    "deep_relu_batchnorm_adam": Case(deep_relu_batchnorm_adam, TABULAR, _labels(), {"epochs": 6}),
    "sample_weights": Case(weighted_dropout, TABULAR, _labels(), {"sample_weight": RNG.random(N).astype("float32")}),
    "class_weights": Case(weighted_dropout, TABULAR, _labels(), {"class_weight": {0: 1.0, 1: 2.0, 2: 0.5}}),
    "validation_split": Case(deep_relu_batchnorm_adam, TABULAR, _labels(), {"validation_split": 0.25}),
    "conv1d_text_nesterov": Case(conv1d_text, RNG.integers(0, 30, (N, 12)).astype("int32"), _labels()),
    "residual_huber_adamw": Case(residual_adamw, TABULAR, RNG.random((N, 1)).astype("float32")),
    "torch_constant_on_a_layer": Case(
        torch_constant,
        TABULAR,
        _labels(),
        fallback=r"TorchConstant\.call\(\) \(test_fast_fit_differential\.py:\d+\) uses a torch tensor that is neither",
    ),
    "data_dependent_python": Case(
        data_dependent_python,
        TABULAR,
        _labels(),
        fallback=r"Branchy\.call\(\) \(test_fast_fit_differential\.py:\d+\) decides on a tensor's value in Python",
    ),
    "custom_train_step": Case(custom_train_step, TABULAR, _labels(), fallback=r"the model overrides train_step\(\)"),
}


def _run(case: Case, monkeypatch, switch: str):
    monkeypatch.setenv("LAYERFLOW_FAST_FIT", switch)
    keras.utils.set_random_seed(7)
    model = case.build()
    options = {"epochs": 3, "batch_size": 16, "verbose": 0, **case.fit}
    history = model.fit(case.x, case.y, **options).history
    evaluation = model.evaluate(case.x, case.y, batch_size=16, verbose=0, return_dict=True)
    predictions = model.predict(case.x, batch_size=16, verbose=0)
    state = [np.array(w) for w in model.get_weights()]
    return fast_fit_status(model), history, evaluation, predictions, state


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_path_matches_keras_or_falls_back_naming_the_cause(name, monkeypatch):
    case = CASES[name]
    status, fast_history, fast_eval, fast_pred, fast_state = _run(case, monkeypatch, "1")
    _, history, evaluation, predictions, state = _run(case, monkeypatch, "0")
    if case.fallback is not None:
        assert status["train"].startswith("keras: ") and re.search(case.fallback, status["train"]), status
    else:
        assert status == {"train": "fast", "test": "fast", "predict": "fast"} or (
            name == "stateful_layer" and status["predict"].startswith("keras: its call() assigns")
        ), status
    # Whatever path it took, the numbers are Keras's own.
    assert fast_history.keys() == history.keys()
    for key in history:
        np.testing.assert_array_equal(fast_history[key], history[key], err_msg=f"History[{key!r}]")
    assert fast_eval.keys() == evaluation.keys()
    for key in evaluation:
        np.testing.assert_array_equal(fast_eval[key], evaluation[key], err_msg=f"evaluate {key!r}")
    for fast, slow in zip(keras.tree.flatten(fast_pred), keras.tree.flatten(predictions), strict=True):
        np.testing.assert_array_equal(fast, slow, err_msg="predict")
    for index, (fast, slow) in enumerate(zip(fast_state, state, strict=True)):
        np.testing.assert_array_equal(fast, slow, err_msg=f"weight {index}")


def test_the_suite_covers_fifteen_models_the_fast_path_takes():
    assert sum(case.fallback is None for case in CASES.values()) >= 15
