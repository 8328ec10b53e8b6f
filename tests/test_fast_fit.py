"""layerflow's fast fit/evaluate/predict on the torch backend, against Keras's own path.

Every comparison trains the same model twice with the same seed: once on the fast path
(the default) and once with LAYERFLOW_FAST_FIT=0 (Keras's own per-step code).
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

import layerflow as lf
from layerflow import keras
from layerflow.fastfit import FastFitError, fast_fit_status, install, one_time_seconds, version_problem

RNG = np.random.default_rng(0)
X = RNG.random((300, 12)).astype("float32")
Y = (X[:, :4].sum(axis=1) > 2).astype("int64") + (X[:, 4] > 0.5).astype("int64")  # 3 classes
X_VAL = RNG.random((70, 12)).astype("float32")
Y_VAL = RNG.integers(0, 3, 70)


def mlp(seed: int = 1, dropout: float = 0.25, batchnorm: bool = False, optimizer="adam"):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((12,)), keras.layers.Dense(16, activation="relu")]
    if batchnorm:
        layers.append(keras.layers.BatchNormalization())
    layers += [keras.layers.Dropout(dropout), keras.layers.Dense(3, activation="softmax")]
    model = keras.Sequential(layers, name="small_mlp")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def both_paths(monkeypatch, train, **model_options):
    """Runs ``train(model)`` on the fast path and on Keras's path; returns both results and models."""
    results = {}
    for switch in ("1", "0"):
        monkeypatch.setenv("LAYERFLOW_FAST_FIT", switch)
        model = mlp(**model_options)
        results[switch] = (train(model), model)
    monkeypatch.delenv("LAYERFLOW_FAST_FIT")
    return results["1"], results["0"]


def assert_history_close(fast, slow, rtol=1e-4):
    assert fast.keys() == slow.keys()
    for key in fast:
        np.testing.assert_allclose(fast[key], slow[key], rtol=rtol, atol=2e-5, err_msg=key)


def assert_weights_close(fast_model, slow_model, atol=2e-5):
    for a, b in zip(fast_model.get_weights(), slow_model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=atol)


def test_losses_and_weights_match_keras_with_the_same_seed(monkeypatch):
    def train(model):
        history = model.fit(X, Y, batch_size=32, epochs=3, validation_split=0.2, verbose=0)
        return history.history, model.evaluate(X_VAL, Y_VAL, verbose=0), model.predict(X_VAL, verbose=0)

    (fast, fast_model), (slow, slow_model) = both_paths(monkeypatch, train)
    assert fast_fit_status(fast_model) == {"train": "fast", "test": "fast", "predict": "fast"}
    assert fast_fit_status(slow_model)["train"] == "keras: LAYERFLOW_FAST_FIT=0"
    assert_history_close(fast[0], slow[0])
    assert fast[0]["loss"][0] != fast[0]["loss"][-1]  # it trained
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-5)
    np.testing.assert_allclose(fast[2], slow[2], atol=1e-6)
    assert_weights_close(fast_model, slow_model)
    assert fast_model.optimizer.iterations.numpy() == slow_model.optimizer.iterations.numpy() == 3 * 8
    # the one-time cost is reported: one graph for full batches of 32 and one for the last 240 % 32
    assert fast_model.train_function.traces == 2
    assert 0 < one_time_seconds(fast_model)["train"] < 30


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adamw"])
def test_other_optimizers_use_kerass_update_and_match(monkeypatch, optimizer):
    def train(model):
        return model.fit(X, Y, batch_size=64, epochs=2, verbose=0).history

    (fast, fast_model), (slow, slow_model) = both_paths(monkeypatch, train, optimizer=optimizer)
    assert fast_fit_status(fast_model)["train"] == "fast"
    assert not fast_model.train_function.applier.direct
    assert_history_close(fast, slow)
    assert_weights_close(fast_model, slow_model)


def test_batchnorm_moving_statistics_are_updated(monkeypatch):
    def train(model):
        return model.fit(X, Y, batch_size=50, epochs=2, verbose=0).history

    (fast, fast_model), (slow, slow_model) = both_paths(monkeypatch, train, batchnorm=True)
    assert fast_fit_status(fast_model)["train"] == "fast"
    moving_mean = fast_model.layers[1].moving_mean.numpy()
    assert np.abs(moving_mean).sum() > 0
    assert_history_close(fast, slow)
    assert_weights_close(fast_model, slow_model)  # includes moving mean and variance


def test_class_weights_sample_weights_and_validation_data(monkeypatch):
    weights = RNG.random(len(X)).astype("float32") + 0.5

    def train(model):
        first = model.fit(X, Y, batch_size=40, epochs=2, class_weight={0: 1.0, 1: 3.0, 2: 0.5}, verbose=0)
        second = model.fit(
            X,
            Y,
            sample_weight=weights,
            batch_size=40,
            epochs=2,
            verbose=0,
            validation_data=(X_VAL, Y_VAL, np.ones(len(X_VAL))),
        )
        return first.history, second.history

    (fast, fast_model), (slow, slow_model) = both_paths(monkeypatch, train)
    assert fast_fit_status(fast_model) == {"train": "fast", "test": "fast", "predict": "not run yet"}
    assert_history_close(fast[0], slow[0])
    assert_history_close(fast[1], slow[1])
    assert "val_loss" in fast[1]
    assert_weights_close(fast_model, slow_model)


def test_steps_per_epoch_and_the_last_partial_batch(monkeypatch):
    def train(model):
        history = model.fit(X, Y, batch_size=64, epochs=2, steps_per_epoch=2, verbose=0)
        partial = model.evaluate(X[:100], Y[:100], batch_size=64, verbose=0, return_dict=True)
        return history.history, partial, model.predict(X[:70], batch_size=64, verbose=0)

    (fast, fast_model), (slow, slow_model) = both_paths(monkeypatch, train)
    assert fast_model.optimizer.iterations.numpy() == slow_model.optimizer.iterations.numpy() == 4
    assert_history_close(fast[0], slow[0])
    assert fast[1] == pytest.approx(slow[1], rel=1e-5)
    assert fast[2].shape == (70, 3)
    np.testing.assert_allclose(fast[2], slow[2], atol=1e-6)


def test_callbacks_early_stopping_checkpoint_reduce_lr_csv(monkeypatch, tmp_path):
    def train(model):
        folder = tmp_path / os.environ["LAYERFLOW_FAST_FIT"]
        folder.mkdir()
        callbacks = [
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, min_delta=0.5),
            keras.callbacks.ModelCheckpoint(str(folder / "best.keras"), monitor="val_loss", save_best_only=True),
            keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0),
            keras.callbacks.CSVLogger(str(folder / "log.csv")),
        ]
        history = model.fit(X, Y, batch_size=32, epochs=10, validation_split=0.25, callbacks=callbacks, verbose=0)
        with open(folder / "log.csv") as handle:
            rows = list(csv.DictReader(handle))
        best = keras.models.load_model(folder / "best.keras")
        return history.history, rows, best.predict(X_VAL, verbose=0)

    (fast, fast_model), (slow, slow_model) = both_paths(monkeypatch, train)
    history, rows, best = fast
    assert len(history["loss"]) == 3  # EarlyStopping stopped after patience 2
    learning_rate = float(fast_model.optimizer.learning_rate.numpy())
    assert learning_rate < 1e-3  # ReduceLROnPlateau acted, and the fused Adam step read its new rate
    assert learning_rate == pytest.approx(float(slow_model.optimizer.learning_rate.numpy()))
    assert [r["learning_rate"] for r in rows] == [r["learning_rate"] for r in slow[1]]
    assert_history_close(history, slow[0])
    assert [r.keys() for r in rows] == [r.keys() for r in slow[1]]
    np.testing.assert_allclose(best, slow[2], atol=1e-5)
    assert_weights_close(fast_model, slow_model)


@pytest.mark.slow
def test_layerflow_run_records_fast_training(runs_dir, write_script):
    from tests.conftest import layerflow_cli

    script = write_script("""
        import numpy as np
        import layerflow as lf
        from layerflow import keras
        from layerflow.fastfit import fast_fit_status
        x = np.random.default_rng(0).random((128, 6)).astype("float32")
        y = (x.sum(axis=1) > 3).astype("int64")
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        model.fit(x, y, epochs=3, batch_size=32, validation_split=0.25, verbose=0)
        model.evaluate(x, y, verbose=0)
        print("status", fast_fit_status(model))
    """)
    done = layerflow_cli("run", str(script), cwd=runs_dir.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    run = next(p for p in runs_dir.iterdir() if p.is_dir())
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3] or len(lines) == 3
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(lines[-1])
    assert "'train': 'fast'" in (run / "output.log").read_text()
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_saving_and_onnx_export_after_fast_training(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = mlp()
    model.fit(X, Y, batch_size=32, epochs=2, verbose=0)
    assert fast_fit_status(model)["train"] == "fast"
    expected = model.predict(X_VAL, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(X_VAL, verbose=0), expected, atol=1e-6)
    folder = lf.export_model(model, tmp_path / "models", name="small")
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: X_VAL})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


class BranchOnData(keras.layers.Layer):
    """Data-dependent Python control flow: cannot be one static graph."""

    def call(self, x):
        if float(keras.ops.sum(x)) > 0:
            return x * 2.0
        return x


def test_untraceable_model_falls_back_with_one_line(capfd):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((12,)), BranchOnData(), keras.layers.Dense(3, activation="softmax")], name="branchy"
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(X, Y, batch_size=32, epochs=2, verbose=0)
    model.evaluate(X, Y, verbose=0)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("layerflow: fast")]
    assert len(lines) == 2, err  # one for fit, one for evaluate, not one per batch
    assert "fast fit off for model 'branchy'" in lines[0] and "cannot be traced" in lines[0]
    assert fast_fit_status(model)["train"].startswith("keras: its step cannot be traced")
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def test_custom_train_step_and_seeded_dropout_fall_back(capfd):
    class Custom(keras.Sequential):
        def train_step(self, data):
            return super().train_step(data)

    model = Custom([keras.Input((12,)), keras.layers.Dense(3, activation="softmax")], name="custom")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    model.fit(X, Y, epochs=1, verbose=0)
    assert fast_fit_status(model)["train"] == "keras: the model overrides train_step()"
    assert "the model overrides train_step()" in capfd.readouterr().err

    seeded = keras.Sequential([keras.Input((12,)), keras.layers.Dropout(0.5, seed=7), keras.layers.Dense(3)])
    seeded.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    seeded.fit(X, Y, epochs=1, verbose=0)
    assert fast_fit_status(seeded)["train"].startswith("keras: its step cannot be traced")


def test_env_switch_turns_it_off_silently(monkeypatch, capfd):
    monkeypatch.setenv("LAYERFLOW_FAST_FIT", "0")
    model = mlp()
    model.fit(X, Y, epochs=1, verbose=0)
    assert fast_fit_status(model)["train"] == "keras: LAYERFLOW_FAST_FIT=0"
    assert "layerflow: fast" not in capfd.readouterr().err
    monkeypatch.setenv("LAYERFLOW_FAST_FIT", "1")
    other = mlp()
    other.fit(X, Y, epochs=1, verbose=0)
    assert fast_fit_status(other)["train"] == "fast"


def test_version_guard(monkeypatch, capfd):
    assert version_problem("3.15.1", "2.13.0+cpu") is None
    assert version_problem("3.15.0", "2.13.1+cu126") is None
    problem = version_problem("3.16.0", "2.13.0")
    assert "tested with keras 3.15, torch 2.13" in problem and "keras 3.16.0" in problem
    assert "torch 2.9.1" in version_problem("3.15.1", "2.9.1")
    assert version_problem("nonsense", "2.13.0") is not None
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    model = mlp()
    model.fit(X, Y, epochs=1, verbose=0)
    assert fast_fit_status(model)["train"].startswith("keras: it is tested with keras 3.15")
    assert "found keras 3.99.0" in capfd.readouterr().err


def test_bad_input_raises_kerass_error_and_keeps_the_fast_path():
    model = mlp()
    with pytest.raises(ValueError):
        model.fit(X[:, :5], Y, epochs=1, verbose=0)  # wrong feature count
    model.fit(X, Y, epochs=1, verbose=0)
    assert fast_fit_status(model)["train"] == "fast"
    with pytest.raises(FastFitError, match="expected a Keras model"):
        fast_fit_status("not a model")
    with pytest.raises(FastFitError, match="expects the imported keras module"):
        install(object())


def test_predict_on_an_uncompiled_model(monkeypatch):
    results = {}
    for switch in ("1", "0"):
        monkeypatch.setenv("LAYERFLOW_FAST_FIT", switch)
        keras.utils.set_random_seed(5)
        model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(3, activation="softmax")])
        results[switch] = (model.predict(X_VAL, batch_size=16, verbose=0), fast_fit_status(model)["predict"])
    assert results["1"][1] == "fast" and results["0"][1] == "keras: LAYERFLOW_FAST_FIT=0"
    np.testing.assert_allclose(results["1"][0], results["0"][0], atol=1e-6)


class BatchLogs(keras.callbacks.Callback):
    """Records the logs every train and test batch end receives."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(("train", batch, dict(logs)))

    def on_test_batch_end(self, batch, logs=None):
        self.seen.append(("test", batch, dict(logs)))


def test_batch_logs_a_callback_hears_match_keras_and_unheard_ones_change_nothing(monkeypatch):
    def train(model):
        quiet = model.fit(X, Y, batch_size=64, epochs=1, verbose=0).history  # no callback hears batch ends
        listener = BatchLogs()
        heard = model.fit(
            X, Y, batch_size=64, epochs=1, verbose=0, validation_data=(X_VAL, Y_VAL), callbacks=[listener]
        ).history
        evaluated = model.evaluate(X_VAL, Y_VAL, batch_size=32, verbose=0, return_dict=True)
        on_batch = (
            model.train_on_batch(X[:32], Y[:32], return_dict=True),
            model.test_on_batch(X[:32], Y[:32], return_dict=True),
        )
        return quiet, heard, listener.seen, evaluated, on_batch

    (fast, fast_model), (slow, _) = both_paths(monkeypatch, train)
    assert fast_fit_status(fast_model)["test"] == "fast"
    assert_history_close(fast[0], slow[0])
    assert_history_close(fast[1], slow[1])
    assert [(kind, batch) for kind, batch, _ in fast[2]] == [(kind, batch) for kind, batch, _ in slow[2]]
    for (_, _, fast_logs), (_, _, slow_logs) in zip(fast[2], slow[2], strict=True):
        assert fast_logs.keys() == slow_logs.keys()
        for key in fast_logs:
            assert float(fast_logs[key]) == pytest.approx(float(slow_logs[key]), rel=1e-4, abs=2e-5), key
    assert fast[3] == pytest.approx(slow[3], rel=1e-4)
    for fast_logs, slow_logs in zip(fast[4], slow[4], strict=True):
        assert all(value is not None for value in fast_logs.values())
        assert fast_logs == pytest.approx(slow_logs, rel=1e-4, abs=2e-5)


def test_regularization_losses_match_keras_over_several_steps(monkeypatch):
    """Weight penalties are summed into a tensor written in place each step: it must not become a
    folded constant (it would keep the previous step's autograd graph and the penalty would go stale)."""

    def build_and_train(model_unused):
        keras.utils.set_random_seed(3)
        penalty = keras.regularizers.L1L2(l1=0.01, l2=0.01)
        inputs = keras.Input((12,))
        hidden = keras.layers.Dense(8, activation="relu", kernel_regularizer=penalty)(inputs)
        outputs = keras.layers.Dense(3, activation="softmax", kernel_regularizer=penalty)(hidden)
        model = keras.Model(inputs, outputs)
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
        history = model.fit(X, Y, batch_size=32, epochs=2, verbose=0).history
        steps = [float(model.train_on_batch(X[:32], Y[:32])) for _ in range(3)]
        return (history, steps, fast_fit_status(model)["train"]), model

    results = {}
    for switch in ("1", "0"):
        monkeypatch.setenv("LAYERFLOW_FAST_FIT", switch)
        results[switch] = build_and_train(None)
    (fast, fast_model), (slow, slow_model) = results["1"], results["0"]
    assert fast[2] == "fast"
    assert_history_close(fast[0], slow[0])
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-4)
    assert_weights_close(fast_model, slow_model)
