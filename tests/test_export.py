"""Export to ONNX bundles: predictions match Keras within 1e-5; layout, lineage and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

import layerflow as lf
from layerflow import keras
from layerflow.deploy import BundleError, onnx_predict, read_bundle, versions
from tests.conftest import layerflow_cli

RNG = np.random.default_rng(0)


def dense_model():
    return keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3, activation="softmax")],
        name="dense",
    )


def cnn_model():
    return keras.Sequential(
        [
            keras.Input((1, 28, 28)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", data_format="channels_first"),
            keras.layers.MaxPooling2D(2, data_format="channels_first"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="cnn",
    )


def lstm_model():
    return keras.Sequential([keras.Input((7, 3)), keras.layers.LSTM(8), keras.layers.Dense(2)], name="lstm")


def text_model():
    return keras.Sequential(
        [
            keras.Input((12,), dtype="int32"),
            keras.layers.Embedding(50, 8),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="text",
    )


@pytest.mark.parametrize(
    "make, sample",
    [
        (dense_model, lambda: RNG.normal(size=(5, 20)).astype("float32")),
        (cnn_model, lambda: RNG.random((5, 1, 28, 28)).astype("float32")),
        (lstm_model, lambda: RNG.normal(size=(5, 7, 3)).astype("float32")),
        (text_model, lambda: RNG.integers(0, 50, (5, 12)).astype("int32")),
    ],
)
def test_exported_predictions_match_keras(tmp_path, make, sample):
    model, x = make(), sample()
    folder = lf.export_model(model, tmp_path / "models", name=model.name)
    assert folder == tmp_path / "models" / model.name / "1"
    assert {p.name for p in folder.iterdir()} == {"model.onnx", "signature.json", "lineage.json"}
    (predicted,) = onnx_predict(folder, x)
    np.testing.assert_allclose(predicted, model.predict(x, verbose=0), atol=1e-5)
    signature = read_bundle(folder)["signature"]
    assert signature["inputs"][0]["shape"][0] is None and signature["inputs"][0]["dtype"] == str(x.dtype)


def test_feature_spec_model_exports_with_its_preprocessing(tmp_path):
    frame = lf.datasets.iris()
    frame["label"] = frame["species"].astype("category").cat.codes
    spec = (
        lf.feature_spec(frame.drop(columns="species"), label="label")
        .numeric(lf.all_numeric(), normalizer="standard")
        .bucketized("petal_length", [2.0, 4.5])
        .indicator("petal_length_bucketized")
        .fit()
    )
    inputs, dense = spec.keras_inputs()
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(dense))
    folder = lf.export_model(model, tmp_path, name="iris", feature_spec=spec, class_labels=["a", "b", "c"])
    raw = {k: frame[k].to_numpy()[:9] for k in frame if k not in ("species", "label")}
    features = spec.transform(raw)
    (predicted,) = onnx_predict(folder, raw)  # the bundle takes the raw columns: the spec is in its graph
    np.testing.assert_allclose(predicted, model.predict(features, verbose=0), atol=1e-5)
    signature = json.loads((folder / "signature.json").read_text())
    assert signature["class_labels"] == ["a", "b", "c"]
    # the spec's format and hash function travel with the bundle (what any hashed bucket in its graph means)
    assert signature["preprocessing"]["format"] == 2
    assert signature["preprocessing"]["hashing"] == "murmur3_x86_32/seed=0/utf-8"
    assert signature["preprocessing"] == spec.state()
    assert signature["raw_inputs"] is True
    assert {i["name"]: i["dtype"] for i in signature["inputs"]} == {k: "float64" for k in raw}
    with pytest.raises(BundleError, match="Input 'petal_length' is missing"):
        onnx_predict(folder, {k: v for k, v in raw.items() if k != "petal_length"})


def test_versions_names_and_unsupported_models(tmp_path):
    model = dense_model()
    assert lf.export_model(model, tmp_path, name="m").name == "1"
    assert lf.export_model(model, tmp_path, name="m").name == "2"
    assert lf.export_model(model, tmp_path, name="m", version=7).name == "7"
    assert versions(tmp_path / "m") == [1, 2, 7]
    with pytest.raises(BundleError, match="exists already"):
        lf.export_model(model, tmp_path, name="m", version=2)
    with pytest.raises(BundleError, match="version=0 must be a positive integer"):
        lf.export_model(model, tmp_path, name="m", version=0)
    with pytest.raises(BundleError, match="Model name 'bad name/x' is not valid"):
        lf.export_model(model, tmp_path, name="bad name/x")
    with pytest.raises(BundleError, match="No exporter knows a builtins.dict"):
        lf.export_model({"not": "a model"}, tmp_path)
    assert versions(tmp_path / "m") == [1, 2, 7]  # failures wrote nothing
    with pytest.raises(BundleError, match="not an export bundle"):
        read_bundle(tmp_path)


def test_models_never_called_export_from_their_declared_inputs(tmp_path):
    # A functional model with named inputs, saved and loaded back: Keras has never called it.
    keras.utils.set_random_seed(0)
    inputs = {"a": keras.Input((2,), name="a"), "b": keras.Input((3,), name="b")}
    merged = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
    keras.Model(inputs, keras.layers.Dense(2)(merged)).save(tmp_path / "two.keras")
    loaded = keras.saving.load_model(tmp_path / "two.keras")
    folder = lf.export_model(loaded, tmp_path / "models", name="two")
    feed = {"a": RNG.normal(size=(4, 2)).astype("float32"), "b": RNG.normal(size=(4, 3)).astype("float32")}
    np.testing.assert_allclose(onnx_predict(folder, feed)[0], loaded.predict(feed, verbose=0), atol=1e-5)
    assert sorted(i["name"] for i in read_bundle(folder)["signature"]["inputs"]) == ["a", "b"]


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def test_a_subclassed_model_exports_once_called(tmp_path):
    model = Subclassed()
    with pytest.raises(BundleError, match="no known inputs; train it or call it on data"):
        lf.export_model(model, tmp_path, name="sub")
    model.build((None, 3))
    with pytest.raises(BundleError, match="call it on data"):
        lf.export_model(model, tmp_path, name="sub")
    assert not (tmp_path / "sub").exists() or versions(tmp_path / "sub") == []  # failures wrote nothing
    x = RNG.normal(size=(4, 3)).astype("float32")
    model(x)
    folder = lf.export_model(model, tmp_path, name="sub")
    np.testing.assert_allclose(onnx_predict(folder, x)[0], model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.slow
def test_cli_exports_the_model_a_run_saved(runs_dir, write_script, tmp_path):
    script = write_script("""
        import numpy as np
        import layerflow as lf
        from layerflow import keras
        FLAGS = lf.flags(units=4)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(FLAGS.units), keras.layers.Dense(1)])
        model.compile(loss="mse", optimizer="sgd")
        model.fit(np.ones((8, 3)), np.ones(8), epochs=1, verbose=0)
        model.save("tiny.keras")
    """)
    record = lf.training_run(script, flags={"units": 5}, echo=False)
    assert record["status"] == "completed", record.get("error")
    done = layerflow_cli("export", "latest", "--out", str(tmp_path / "models"), cwd=runs_dir.parent)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "models" / "tiny" / "1"
    lineage = json.loads((folder / "lineage.json").read_text())
    assert lineage["run_id"] == record["id"] and lineage["flags"] == {"units": 5}
    assert lineage["source_hash"] == record["source_hash"]
    model = keras.saving.load_model(Path(record["path"]) / "model" / "tiny.keras")
    x = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    np.testing.assert_allclose(onnx_predict(folder, x)[0], model.predict(x, verbose=0), atol=1e-5)
    done = layerflow_cli(
        "export",
        str(Path(record["path"]) / "model" / "tiny.keras"),
        "--out",
        str(tmp_path / "models"),
        "--name",
        "again",
        "--version",
        "3",
        cwd=runs_dir.parent,
    )
    assert done.returncode == 0 and (tmp_path / "models" / "again" / "3" / "model.onnx").exists()

    failed = lf.training_run(write_script("print('no model')\n", name="nomodel.py"), echo=False)
    done = layerflow_cli("export", failed["id"], "--out", str(tmp_path / "models"), cwd=runs_dir.parent)
    assert done.returncode == 2 and "saved no Keras model" in done.stderr
    done = layerflow_cli("export", "nope", "--out", str(tmp_path / "models"), cwd=runs_dir.parent)
    assert done.returncode == 2 and "neither a model file nor a run" in done.stderr
    (tmp_path / "notes.txt").write_text("x")
    done = layerflow_cli("export", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "m"), cwd=runs_dir.parent)
    assert done.returncode == 2 and "not a saved Keras model" in done.stderr


@pytest.mark.slow
def test_a_model_trained_on_jax_exports_too(tmp_path):
    import os
    import subprocess
    import sys

    train = (
        "import sys, numpy as np\n"
        "import layerflow as lf\n"
        "from layerflow import keras\n"
        "assert keras.backend.backend() == 'jax'\n"
        "keras.utils.set_random_seed(0)\n"
        "m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation='relu'), keras.layers.Dense(2)])\n"
        "m.compile(loss='mse', optimizer='adam')\n"
        "x = np.random.default_rng(0).normal(size=(16, 5)).astype('float32')\n"
        "m.fit(x, np.ones((16, 2)), epochs=3, verbose=0)\n"
        "m.save(sys.argv[1]); np.save(sys.argv[2], x[:4]); np.save(sys.argv[3], m.predict(x[:4], verbose=0))\n"
    )
    paths = [tmp_path / "jax_model.keras", tmp_path / "x.npy", tmp_path / "y.npy"]
    done = subprocess.run(
        [sys.executable, "-c", train, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    done = layerflow_cli("export", str(paths[0]), "--out", str(tmp_path / "models"), cwd=tmp_path)  # torch side
    assert done.returncode == 0, done.stderr
    (predicted,) = onnx_predict(tmp_path / "models" / "jax_model" / "1", np.load(paths[1]))
    np.testing.assert_allclose(predicted, np.load(paths[2]), atol=1e-5)
