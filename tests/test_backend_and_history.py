import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import layerflow as lf
from layerflow import keras


def test_keras_runs_on_torch_by_default():
    assert keras.backend.backend() == "torch"
    info = lf.backend_info()
    assert info["backend"] == "torch" and info["keras"].startswith("3.")
    assert "cpu" in info["devices"] and isinstance(info["gpu"], bool)


@pytest.mark.slow
def test_jax_backend_is_selected_by_environment():
    code = "import layerflow as lf; i = lf.backend_info(); print(i['backend'], i['devices'])"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("jax ['cpu:0']")


def test_unsupported_backend_is_a_clear_error():
    code = "import layerflow as lf; lf.backend_info()"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KERAS_BACKEND": "theano"},
    )
    assert done.returncode != 0
    assert "KERAS_BACKEND='theano' is not supported" in done.stderr and "torch, jax" in done.stderr


@pytest.fixture(scope="module")
def tiny_history():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(200, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2, activation="softmax")],
        name="tiny",
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0)
    return model, history


def test_history_frame_is_long_and_tidy(tiny_history):
    _, history = tiny_history
    frame = lf.history_frame(history)
    assert list(frame.columns) == ["epoch", "metric", "value", "split"]
    assert len(frame) == 3 * 4
    assert set(frame["metric"]) == {"loss", "accuracy"}
    assert set(frame["split"]) == {"training", "validation"}
    assert frame["epoch"].tolist()[:3] == [1, 2, 3]
    val_loss = frame.query("metric == 'loss' and split == 'validation'")["value"].tolist()
    assert val_loss == pytest.approx(history.history["val_loss"])
    assert lf.history_frame(history.history).equals(frame)


def test_history_frame_rejects_bad_input():
    with pytest.raises(TypeError, match="keras History"):
        lf.history_frame([1, 2, 3])
    with pytest.raises(ValueError, match="different lengths"):
        lf.history_frame({"loss": [1.0, 0.5], "accuracy": [0.5]})


def test_plot_history_writes_a_png(tiny_history, tmp_path):
    from matplotlib.image import imread

    _, history = tiny_history
    figure = lf.plot_history(history, tmp_path / "plots" / "history.png")
    assert len(figure.axes) == 2
    assert [ax.get_ylabel() for ax in figure.axes] == ["loss", "accuracy"]
    assert {t.get_text() for t in figure.axes[0].get_legend().get_texts()} == {"training", "validation"}
    data = (tmp_path / "plots" / "history.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(tmp_path / "plots" / "history.png").shape[2] in (3, 4)
    single = lf.plot_history(lf.history_frame(history), metrics=["accuracy"])
    assert len(single.axes) == 1
    with pytest.raises(ValueError, match="not in the history"):
        lf.plot_history(history, metrics=["auc"])
    with pytest.raises(ValueError, match="no metrics"):
        lf.plot_history(pd.DataFrame(columns=["epoch", "metric", "value", "split"]))


def test_model_summary_is_captured_as_text(tiny_history, capsys):
    model, _ = tiny_history
    text = lf.model_summary(model)
    assert capsys.readouterr().out == ""
    assert "tiny" in text and "Dense" in text and "Total params" in text
    with pytest.raises(TypeError, match="Keras model"):
        lf.model_summary(object())
