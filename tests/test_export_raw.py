"""Raw feature values in, named predictions out: the spec's preprocessing and the head live in
the ONNX graph, for Keras and XGBoost models, with the same outputs as the model in Python."""

import json

import numpy as np
import onnx
import pandas as pd
import pytest

import layerflow as lf
from layerflow.deploy.bundle import BundleError
from layerflow.deploy.preprocessing import FeatureGraphError, preprocessing_model
from layerflow.features.hashing import murmur3, stable_hash
from tests.raw_models import (
    LABELS,
    REQUEST_ROWS,
    Fitted,
    assert_predicted,
    assert_same_outputs,
    estimator,
    expected_outputs,
    fitted_spec,
    keras_model,
    request_frame,
    save_fitted,
    training_frame,
)

KINDS = [
    ("keras", "multiclass"),
    ("keras", "binary"),
    ("keras", "regression"),
    ("xgboost", "multiclass"),
    ("xgboost", "binary"),
    ("xgboost", "regression"),
]


@pytest.fixture(scope="module")
def frame():
    return training_frame()


@pytest.fixture(scope="module")
def spec(frame):
    return fitted_spec(frame)


@pytest.mark.parametrize("kind, head", KINDS)
def test_bundle_takes_raw_rows_and_gives_the_prediction_keys(tmp_path, frame, spec, kind, head):
    fitted = estimator(kind, head, frame, spec)
    folder = lf.export_model(fitted, tmp_path, name=f"{kind}_{head}")
    expected = expected_outputs(fitted, request_frame())
    # the same outputs from a DataFrame, a list of row dicts and a dict of columns
    assert_predicted(lf.predict(folder, request_frame()), expected)
    assert_predicted(lf.predict(folder, REQUEST_ROWS), expected)
    columns = {k: [row[k] for row in REQUEST_ROWS] for k in REQUEST_ROWS[0]}
    assert_predicted(lf.predict(tmp_path, columns), expected)

    signature = json.loads((folder / "signature.json").read_text())
    inputs = {i["name"]: i for i in signature["inputs"]}
    assert {n: i["dtype"] for n, i in inputs.items()} == {
        "age": "float64",
        "income": "float64",
        "city": "string",
        "floor": "int64",
    }
    assert inputs["city"]["vocabulary"] == spec.categorical_columns["city"].vocabulary
    assert inputs["income"]["missing"] is True and inputs["floor"]["missing"] is False
    names = [o["name"] for o in signature["outputs"]]
    assert (
        names
        == {
            "regression": ["predictions"],
            "binary": ["logits", "logistic", "probabilities", "class_ids", "classes"],
            "multiclass": ["logits", "probabilities", "class_ids", "classes"],
        }[head]
    )
    assert signature["head"] == head and signature["raw_inputs"] is True
    assert signature.get("class_labels") == fitted.parts["class_labels"]
    if head != "regression":
        assert next(o for o in signature["outputs"] if o["name"] == "classes")["dtype"] == "string"


def test_the_graph_needs_only_standard_onnx_domains(tmp_path, frame, spec):
    folder = lf.export_model(estimator("keras", "multiclass", frame, spec), tmp_path, name="m")
    graph = onnx.load(str(folder / "model.onnx"))
    onnx.checker.check_model(graph, full_check=True)
    assert {node.domain for node in graph.graph.node} <= {"", "ai.onnx.ml", "com.microsoft"}
    assert {"LabelEncoder", "MurmurHash3", "StringConcat"} <= {node.op_type for node in graph.graph.node}


def test_keras_model_with_feature_spec_and_head_keywords(tmp_path, frame, spec):
    model = keras_model(spec, 3)
    folder = lf.export_model(
        model, tmp_path, name="plain", feature_spec=spec, head="multiclass", model_outputs="logits", class_labels=LABELS
    )
    fitted = Fitted(
        kind="keras", model=model, feature_spec=spec, head="multiclass", class_labels=LABELS, model_outputs="logits"
    )
    assert_predicted(lf.predict(folder, request_frame()), expected_outputs(fitted, request_frame()))
    # without a head the outputs keep the model's own names
    bare = lf.export_model(model, tmp_path, name="bare", feature_spec=spec)
    raw = np.asarray(
        model.predict(spec.transform({k: request_frame()[k].to_numpy() for k in REQUEST_ROWS[0]}), verbose=0)
    )
    predicted = lf.predict(bare, REQUEST_ROWS)  # one output, still by its name
    assert list(predicted) == [o["name"] for o in json.loads((bare / "signature.json").read_text())["outputs"]]
    np.testing.assert_allclose(next(iter(predicted.values())), raw, atol=1e-5)


def test_every_column_kind_encodes_the_same_in_python_and_in_the_graph():
    """Hashed and crossed buckets, vocabularies with several out-of-vocabulary buckets, identity and
    bucketized columns agree on strings of all kinds, unseen and missing values, edges and NaN."""
    import onnxruntime as ort
    from onnx import TensorProto

    rng = np.random.default_rng(3)
    words = ["", "lima", "zürich", "東京", "a\x1fb", "emoji 🙂"] + [
        "".join(rng.choice(list("abcxyz -_é"), 7)) for _ in range(200)
    ]
    n = len(words)
    table = pd.DataFrame(
        {
            "word": words,
            "other": words[::-1],
            "token": words[1:] + words[:1],
            "slot": rng.integers(0, 5, n),
            "size": rng.normal(0, 2, n),
            "y": 0,
        }
    )
    spec = (
        lf.feature_spec(table, label="y")
        .categorical_hash("word", hash_bucket_size=97)
        .crossed(["word", "other"], hash_bucket_size=1009)
        .categorical_vocab("token", max_tokens=20, num_oov_buckets=3)
        .categorical_identity("slot", num_buckets=4)
        .numeric("size")
        .bucketized("size", [-1.0, 0.0, 1.5])
        .crossed(["slot", "size_bucketized"], hash_bucket_size=13)
        .fit()
    )
    graph = preprocessing_model(
        spec, {n: TensorProto.INT64 if n in spec.categorical_columns else TensorProto.FLOAT for n in spec.input_names}
    )
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    size = table["size"].to_numpy().copy()
    size[:4] = [-1.0, 0.0, 1.5, np.nan]  # boundaries themselves, and a missing value
    slot = np.array([-1, 4, 3, 0] + [int(v) for v in rng.integers(-2, 7, n - 4)], dtype=np.int64)
    batch = {
        "word": np.array(words, dtype=object),
        "other": np.array(words[::-1], dtype=object),
        "token": np.array(words[::-1], dtype=object),
        "slot": slot,
        "size": size,
    }
    feed = {**batch, "slot": slot.astype(np.float64)}
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    expected = spec.transform(batch)
    for name in spec.input_names:
        np.testing.assert_array_equal(got[f"encoded/{name}"], expected[name], err_msg=name)
    assert set(expected["token"].ravel()) > {20, 21, 22}  # the three out-of-vocabulary buckets are used
    assert murmur3("lima") == 3743994873  # MurmurHash3_x86_32("lima", seed 0), as onnxruntime's operator computes it
    assert stable_hash(np.array(["lima"]), 10).tolist() == [3743994873 % 10]


def test_bad_exports_are_refused_with_a_clear_error(tmp_path, frame, spec):
    model = keras_model(spec, 3)
    with pytest.raises(BundleError, match="lacks \\['head', 'model_outputs'\\]"):
        lf.export_model(Fitted(kind="keras", model=model, feature_spec=spec), tmp_path)
    with pytest.raises(BundleError, match="kind 'torch' is not known"):
        lf.export_model(
            Fitted(kind="torch", model=model, feature_spec=spec, head="binary", model_outputs="logits"), tmp_path
        )
    with pytest.raises(BundleError, match="head='ranking' is not known"):
        lf.export_model(model, tmp_path, feature_spec=spec, head="ranking", model_outputs="logits")
    with pytest.raises(BundleError, match="binary head needs 2 class labels"):
        lf.export_model(model, tmp_path, feature_spec=spec, head="binary", model_outputs="logits", class_labels=LABELS)
    with pytest.raises(BundleError, match="3 values per row but there are 2 class labels"):
        lf.export_model(
            model, tmp_path, feature_spec=spec, head="multiclass", model_outputs="logits", class_labels=["a", "b"]
        )
    with pytest.raises(BundleError, match="must be a fitted spec"):
        lf.export_model(model, tmp_path, feature_spec=lf.feature_spec(frame, label="y").numeric("age"))
    import xgboost as xgb

    booster = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(np.ones((4, 2)), np.ones(4)), 1)
    with pytest.raises(BundleError, match="takes 2 features; the spec encodes"):
        lf.export_model(booster, tmp_path, feature_spec=spec, head="regression", model_outputs="predictions")
    with pytest.raises(BundleError, match="with the feature_spec= it was trained on"):
        lf.export_model(booster, tmp_path)
    floats = pd.DataFrame({"ratio": [0.5, 1.5, 2.5], "y": [0, 1, 0]})
    float_spec = lf.feature_spec(floats, label="y").categorical_vocab("ratio").indicator("ratio").fit()
    with pytest.raises(FeatureGraphError, match="'ratio' holds floats .* Bucketize it"):
        lf.export_model(keras_model(float_spec, 1), tmp_path, feature_spec=float_spec)
    assert not any(p.name.isdigit() for p in (tmp_path / "model").glob("*")) if (tmp_path / "model").exists() else True


class Broken:
    def export_parts(self):
        raise RuntimeError("train the estimator before exporting it")


def test_export_parts_errors_are_reported(tmp_path):
    with pytest.raises(BundleError, match="Broken.export_parts\\(\\) failed: train the estimator"):
        lf.export_model(Broken(), tmp_path)


def test_cli_predict_takes_raw_rows(tmp_path, frame, spec):
    import subprocess
    import sys

    fitted = estimator("keras", "binary", frame, spec)
    lf.export_model(fitted, tmp_path / "models", name="income")
    (tmp_path / "rows.json").write_text(json.dumps({"instances": REQUEST_ROWS}))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "layerflow.cli",
            "predict",
            str(tmp_path / "models"),
            "--input",
            str(tmp_path / "rows.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert_same_outputs(json.loads(done.stdout), expected_outputs(fitted, request_frame()))
    (tmp_path / "bad.json").write_text(json.dumps([{**REQUEST_ROWS[0], "city": 2.5}]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "layerflow.cli",
            "predict",
            str(tmp_path / "models"),
            "--input",
            str(tmp_path / "bad.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "Error: Input 'city' takes strings" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_cli_exports_a_saved_estimator_folder(tmp_path, frame, spec):
    """`layerflow export FOLDER` loads a saved model folder through the loader its layerflow_model.json
    names, and exports it through export_parts() (the spec reloaded from JSON: raw dtypes by usage)."""
    import subprocess
    import sys
    from pathlib import Path

    fitted = estimator("keras", "multiclass", frame, spec)
    save_fitted(fitted, tmp_path / "income")
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "layerflow.cli", "export", str(tmp_path / "income"), "--out", str(tmp_path / "models")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo,
    )
    assert done.returncode == 0, done.stderr
    assert_predicted(lf.predict(tmp_path / "models", REQUEST_ROWS), expected_outputs(fitted, request_frame()))
    signature = json.loads((tmp_path / "models" / "income" / "1" / "signature.json").read_text())
    # no dataset is left to say "floor" held integers: it takes strings, and integers as their text
    assert {i["name"]: i["dtype"] for i in signature["inputs"]}["floor"] == "string"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "layerflow_model.json").write_text('{"loader": "no_such_module:load"}')
    done = subprocess.run(
        [sys.executable, "-m", "layerflow.cli", "export", str(tmp_path / "broken"), "--out", str(tmp_path / "models")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo,
    )
    assert done.returncode != 0 and "its loader 'no_such_module:load' cannot be imported" in done.stderr


def test_a_booster_over_columns_in_another_order(tmp_path, frame, spec):
    """export_parts()' feature_names gives the booster's matrix columns in order; names on the booster are fine."""
    import xgboost as xgb

    from tests.raw_models import encoded

    order = list(reversed(spec.input_names))
    features = encoded(spec, frame)
    matrix = np.hstack([features[n].astype(np.float32) for n in order])
    booster = xgb.train(
        {"objective": "reg:squarederror", "max_depth": 3, "seed": 0},
        xgb.DMatrix(matrix, frame["age"].to_numpy() / 10.0, feature_names=order),
        5,
    )
    fitted = Fitted(
        kind="xgboost",
        model=booster,
        feature_spec=spec,
        head="regression",
        class_labels=None,
        model_outputs="predictions",
        feature_names=order,
    )
    folder = lf.export_model(fitted, tmp_path, name="reordered")
    asked = encoded(spec, request_frame())
    want = booster.predict(xgb.DMatrix(np.hstack([asked[n].astype(np.float32) for n in order]), feature_names=order))
    np.testing.assert_allclose(np.ravel(lf.predict(folder, REQUEST_ROWS)["predictions"]), want, atol=1e-5)
    with pytest.raises(BundleError, match="feature_names \\['nope'\\] are not encoded by the spec"):
        lf.export_model(Fitted(**{**fitted.parts, "feature_names": ["nope", *order[1:]]}), tmp_path)
