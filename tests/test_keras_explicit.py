"""layerflow's Keras integration is explicit and per model.

Importing layerflow (or ``from layerflow import keras``) changes no model built with plain
``import keras``: it trains bit for bit as in a process that never imported layerflow.
``lf.fastfit.enable``/``disable`` switch one model; ``from layerflow import keras`` models are
enabled as they are built; a tracked run records plain Keras models through its callback.
"""

from __future__ import annotations

import json
import subprocess
import sys

import keras as plain_keras
import numpy as np
import pytest

import layerflow as lf
from layerflow import keras
from layerflow.fastfit import FastFitError, disable, enable, fast_fit_status, is_enabled
from layerflow.fastfit.steps import FastStep

RNG = np.random.default_rng(4)
X = RNG.random((96, 6)).astype("float32")
Y = (X[:, :3].sum(axis=1) > 1.5).astype("int64")


def build(module, seed: int = 2):
    module.utils.set_random_seed(seed)
    model = module.Sequential(
        [
            module.Input((6,)),
            module.layers.Dense(8, activation="relu"),
            module.layers.Dropout(0.2),
            module.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def train(model):
    history = model.fit(X, Y, batch_size=16, epochs=2, validation_split=0.25, verbose=0)
    return history.history, model.evaluate(X, Y, verbose=0), model.predict(X, verbose=0)


class SeesHooks(plain_keras.callbacks.Callback):
    """Notes, per batch, for which model the fast path's class hooks act (None: for none)."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def on_train_batch_begin(self, batch, logs=None):
        from layerflow.fastfit import _keras_internals

        self.seen.add(_keras_internals.running_model())


@pytest.mark.slow
def test_a_plain_keras_model_keeps_kerass_own_functions_after_importing_layerflow():
    layerflow_model = build(keras)
    train(layerflow_model)  # the fast path's hooks are installed by now
    hooks = SeesHooks()
    layerflow_model.fit(X, Y, epochs=1, callbacks=[hooks], verbose=0)
    assert hooks.seen == {layerflow_model}
    model = build(plain_keras)
    train(model)
    model.fit(X, Y, epochs=1, callbacks=[hooks := SeesHooks()], verbose=0)
    assert hooks.seen == {None}  # the hooks pass a plain model's loop through to Keras's code
    assert not is_enabled(model)
    for function in (model.train_function, model.test_function, model.predict_function):
        assert function is not None and not isinstance(function, FastStep)
    status = fast_fit_status(model)
    assert all(value.startswith("keras: not enabled") for value in status.values()), status
    assert not {"fit", "evaluate", "predict", "make_train_function"} & set(vars(model))
    trainer = type(model).__mro__[[c.__name__ for c in type(model).__mro__].index("TorchTrainer")]
    for name in ("fit", "evaluate", "predict", "make_train_function", "make_test_function", "make_predict_function"):
        assert getattr(plain_keras.Model, name) is getattr(trainer, name), name
    assert fast_fit_status(layerflow_model) == {"train": "fast", "test": "fast", "predict": "fast"}


_PLAIN_SCRIPT = """
import sys
import numpy as np
if sys.argv[1] == "with-layerflow":
    import layerflow as lf
    from layerflow import keras as lk
    m = lk.Sequential([lk.Input((6,)), lk.layers.Dense(2)])
    m.compile(loss="mse", optimizer="adam")
    m.fit(np.ones((32, 6), "float32"), np.ones((32, 2), "float32"), verbose=0)
    m.evaluate(np.ones((32, 6), "float32"), np.ones((32, 2), "float32"), verbose=0)
    assert lf.fast_fit_status(m)["train"] == "fast"
import keras
rng = np.random.default_rng(4)
x = rng.random((96, 6)).astype("float32")
y = (x[:, :3].sum(axis=1) > 1.5).astype("int64")
keras.utils.set_random_seed(2)
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dropout(0.2), keras.layers.Dense(2, activation="softmax")])
model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, shuffle=True, verbose=0)
np.save(sys.argv[2], np.concatenate([w.ravel() for w in model.get_weights()]
                                   + [np.asarray(model.evaluate(x, y, verbose=0)), model.predict(x, verbose=0).ravel()]))
"""


@pytest.mark.slow
def test_a_plain_keras_model_trains_bit_for_bit_as_without_layerflow(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(_PLAIN_SCRIPT)
    results = {}
    for mode in ("with-layerflow", "without"):
        out = tmp_path / f"{mode}.npy"
        done = subprocess.run(
            [sys.executable, str(script), mode, str(out)],
            capture_output=True,
            text=True,
            timeout=240,
            env={**__import__("os").environ, "KERAS_BACKEND": "torch"},
        )
        assert done.returncode == 0, done.stderr
        results[mode] = np.load(out)
    np.testing.assert_array_equal(results["with-layerflow"], results["without"])


def test_enable_and_disable_one_model():
    fast = build(plain_keras)
    assert enable(fast) is fast and enable(fast) is fast and is_enabled(fast)  # idempotent
    fast_results = train(fast)
    slow = build(plain_keras)  # the same seed: the same initial weights, dropout masks and shuffles
    slow_results = train(slow)
    assert fast_fit_status(fast) == {"train": "fast", "test": "fast", "predict": "fast"}
    assert fast_fit_status(slow)["train"].startswith("keras: not enabled")
    for key in fast_results[0]:
        np.testing.assert_allclose(fast_results[0][key], slow_results[0][key], rtol=1e-4, atol=2e-5, err_msg=key)
    np.testing.assert_allclose(fast_results[2], slow_results[2], atol=2e-5)

    assert disable(fast) is fast and not is_enabled(fast)
    assert not {"fit", "evaluate", "predict", "make_train_function"} & set(vars(fast))
    fast.fit(X, Y, epochs=1, verbose=0)
    assert not isinstance(fast.train_function, FastStep)
    assert fast_fit_status(fast)["train"].startswith("keras: not enabled")
    enable(fast)  # Keras's own step function made while disabled is replaced
    fast.fit(X, Y, epochs=1, verbose=0)
    assert fast_fit_status(fast)["train"] == "fast"
    with pytest.raises(FastFitError, match="expected a Keras model"):
        enable("not a model")
    with pytest.raises(FastFitError, match="expected a Keras model"):
        disable(object())


def test_layerflow_keras_builds_enabled_models_of_every_kind():
    inputs = keras.Input((6,))
    functional = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    assert type(functional).__name__ == "Functional" and is_enabled(functional)
    assert isinstance(functional, keras.Model) and isinstance(functional, plain_keras.Model)
    assert issubclass(plain_keras.Sequential, keras.Model) and keras.Sequential.__name__ == "Sequential"

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2, activation="softmax")

        def call(self, x):
            return self.dense(x)

    class OwnFit(keras.Sequential):
        def fit(self, *args, **kwargs):
            self.fitted = True
            return super().fit(*args, **kwargs)

    net = Net()
    net.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    net.fit(X, Y, epochs=1, verbose=0)
    assert is_enabled(net) and fast_fit_status(net)["train"] == "fast"
    own = OwnFit([keras.Input((6,)), keras.layers.Dense(2, activation="softmax")])
    own.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    own.fit(X, Y, epochs=1, verbose=0)
    assert own.fitted and "fit" not in vars(own)  # a method the class overrides is left alone
    assert fast_fit_status(own)["train"] == "fast"
    # what is not built through layerflow.keras's Model/Sequential stays Keras's
    assert not is_enabled(plain_keras.models.clone_model(functional))
    assert keras.layers.Dense is plain_keras.layers.Dense and keras.__version__ == plain_keras.__version__


@pytest.mark.slow
def test_a_tracked_run_records_a_plain_keras_model(runs_dir, write_script):
    script = write_script("""
        import numpy as np
        import keras
        rng = np.random.default_rng(0)
        x = rng.random((128, 6)).astype("float32")
        y = (x.sum(axis=1) > 3).astype("int64")
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        model.fit(x, y, epochs=3, batch_size=32, validation_split=0.25, verbose=0)
        loss, accuracy = model.evaluate(x[:40], y[:40], verbose=0)
        print("evaluated", repr(loss))
        model.save("plain.keras")
        print("step", type(model.train_function).__name__)
    """)
    record = lf.training_run(script, echo=False)
    assert record["status"] == "completed", record.get("error")
    run = next(p for p in runs_dir.iterdir() if p.is_dir())
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(lines[-1])
    output = (run / "output.log").read_text()
    evaluated = float(output.split("evaluated ")[1].split()[0])
    assert record["evaluation"]["loss"] == pytest.approx(evaluated)  # the script's evaluate, not fit's validation
    assert (run / "model" / "plain.keras").is_file()
    assert json.loads((run / "keras.json").read_text())["saved_model"] == "model/plain.keras"
    assert "step function" in output  # Keras's own step: a tracked run does not enable a plain model
