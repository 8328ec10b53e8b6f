"""Estimator(model_fn=...): the function returns an output tensor or a keras.Model built on the
spec's inputs (compiled: its optimizer, loss and metrics are kept); anything else is a clear error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import layerflow as lf

E = lf.estimators
keras = lf.keras
CLASSES = ["low", "mid", "high"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.normal(0, 1, n), "city": rng.choice(["x", "y"], n)})
    score = frame.a + 0.5 * frame.b
    frame["y"] = np.select([score < -0.5, score < 0.5], ["low", "mid"], "high")
    return frame


def compiled_model_fn(optimizer):
    def model_fn(inputs, dense, params):
        numbers = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
        hidden = keras.layers.Dense(params["units"], activation="relu")(numbers)
        probabilities = keras.layers.Dense(params["n_outputs"], activation="softmax", name="probabilities")(hidden)
        model = keras.Model(inputs, probabilities)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    return model_fn


def test_a_compiled_model_trains_evaluates_predicts_and_exports_with_its_own_settings(frame, tmp_path):
    optimizer = keras.optimizers.Adam(0.05)
    est = E.Estimator(
        compiled_model_fn(optimizer),
        label="y",
        head="multiclass",
        label_vocabulary=CLASSES,
        params={"units": 16},
        model_dir=tmp_path / "m",
        seed=0,
    )
    est.train(frame, epochs=8)
    assert est.model.optimizer is optimizer and est.model.loss == "sparse_categorical_crossentropy"
    assert est.model_outputs == "probabilities"
    assert est.evaluate(frame)["accuracy"] > 0.85
    predicted = est.predict(frame.drop(columns=["y"]))
    probabilities = np.stack(predicted.probabilities)
    model_out = np.asarray(est.model.predict_on_batch(est._encode({c: frame[c].to_numpy() for c in frame}, False)[0]))
    np.testing.assert_allclose(probabilities, model_out, rtol=1e-5, atol=1e-6)  # the softmax is not applied twice
    assert set(predicted.classes) <= set(CLASSES)

    loaded = E.load(tmp_path / "m")  # without its model_fn: the checkpoint says what the output holds
    assert loaded.model_outputs == "probabilities"
    np.testing.assert_allclose(np.stack(loaded.predict(frame).probabilities), probabilities, rtol=1e-5)

    bundle = lf.export_model(est, tmp_path / "models", name="custom")
    served = lf.predict(bundle, frame.drop(columns=["y"]).head(20))
    np.testing.assert_allclose(np.asarray(served["probabilities"]), probabilities[:20], atol=1e-5)
    assert [str(c) for c in np.asarray(served["classes"]).reshape(-1)] == list(predicted.classes[:20])


def test_an_uncompiled_model_gets_the_estimators_optimizer_and_the_heads_loss(frame):
    def model_fn(inputs, dense, params):
        numbers = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
        return keras.Model(inputs, keras.layers.Dense(params["n_outputs"])(numbers))

    est = E.Estimator(
        model_fn, label="y", head="multiclass", label_vocabulary=CLASSES, optimizer="SGD", learning_rate=1.0, seed=0
    ).train(frame, epochs=6)
    assert type(est.model.optimizer).__name__ == "SGD" and est.model_outputs == "logits"
    assert est.model.loss.from_logits
    assert est.evaluate(frame)["accuracy"] > 0.6


@pytest.mark.parametrize(
    "returned, words",
    [
        (
            lambda inputs, dense, n: np.zeros((1, n)),
            r"returned ndarray .*expected the output tensor .* or a keras.Model",
        ),
        (lambda inputs, dense, n: {"logits": inputs["a"]}, r"returned dict"),
        (lambda inputs, dense, n: None, r"returned NoneType"),
        (
            lambda inputs, dense, n: keras.Model(inputs, keras.layers.Dense(n + 1)(inputs["a"])),
            r"width 4, but the multiclass head takes a width of 3",
        ),
        (lambda inputs, dense, n: keras.layers.Dense(2)(inputs["a"]), r"width 2"),
        (
            lambda inputs, dense, n: (lambda x: keras.Model(x, keras.layers.Dense(n)(x)))(keras.Input((1,), name="z")),
            r"inputs \['z'\] are not the spec's inputs",
        ),
        (
            lambda inputs, dense, n: keras.Model(
                inputs, {"p": keras.layers.Dense(n)(inputs["a"]), "q": keras.layers.Dense(n)(inputs["b"])}
            ),
            r"2 outputs",
        ),
    ],
)
def test_anything_else_model_fn_returns_is_a_clear_error(frame, returned, words):
    est = E.Estimator(
        lambda inputs, dense, params: returned(inputs, dense, params["n_outputs"]),
        label="y",
        head="multiclass",
        label_vocabulary=CLASSES,
    )
    with pytest.raises(E.EstimatorError, match=words):
        est.train(frame, epochs=1)
    assert not est.trained
