"""Raw-feature models for the export, serving and web tests: a fitted spec, Keras and XGBoost
models over it, wrapped in a test-local object with ``export_parts()`` (what a fitted
``lf.estimators`` estimator gives), and the reference outputs computed in Python."""

from __future__ import annotations

import numpy as np
import pandas as pd

import layerflow as lf
from layerflow import keras

LABELS = ["low", "mid", "high"]
CITIES = ["lima", "oslo", "paris", "quito", "zürich"]


def training_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = rng.normal(50_000, 15_000, n).round(2)
    income[::17] = np.nan
    city = rng.choice(CITIES, n)
    floor = rng.integers(0, 30, n)
    score = (age - 45) / 15 + (income - 50_000) / 20_000 + (city == "oslo")
    return pd.DataFrame(
        {
            "age": age,
            "city": city,
            "income": income,
            "floor": floor,
            "y": np.digitize(np.nan_to_num(score), [-0.5, 0.5]),
        }
    )


def fitted_spec(frame: pd.DataFrame):
    """Numeric (standardised, one with missing values), vocabulary, bucketized, crossed and hashed columns."""
    return (
        lf.feature_spec(frame, label="y")
        .numeric("age", "income", normalizer="standard")
        .categorical_vocab("city")
        .indicator("city")
        .bucketized("age", [30, 45, 60])
        .crossed(["city", "age_bucketized"], hash_bucket_size=16)
        .indicator("city_X_age_bucketized")
        .categorical_hash("floor", hash_bucket_size=8)
        .embedding("floor", dimension=2)
        .fit()
    )


# Rows a client sends: a known row, an unseen city, a missing income, a missing city.
REQUEST_ROWS = [
    {"age": 41, "city": "lima", "income": 52000.0, "floor": 3},
    {"age": 67, "city": "atlantis", "income": 61000.5, "floor": 12},
    {"age": 23, "city": "zürich", "income": None, "floor": 0},
    {"age": 35, "city": None, "income": 38000.0, "floor": 29},
]


def request_frame() -> pd.DataFrame:
    """The request rows as a DataFrame; the missing city stays None (pandas would make it NaN, whose
    text FeatureSpec.transform takes as 'nan', not as a missing value)."""
    frame = pd.DataFrame(REQUEST_ROWS).astype({"income": "float64"})
    frame["city"] = pd.Series([row["city"] for row in REQUEST_ROWS], dtype=object)
    return frame


def encoded(spec, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return spec.transform({k: frame[k].to_numpy() for k in frame.columns})


def encoded_matrix(spec, frame: pd.DataFrame) -> np.ndarray:
    features = encoded(spec, frame)
    return np.hstack([features[name].astype(np.float32) for name in spec.input_names])


class Fitted:
    """What a fitted estimator hands export_model (duck-typed: only export_parts())."""

    def __init__(self, **parts):
        self.parts = parts

    def export_parts(self) -> dict:
        return dict(self.parts)


def keras_model(spec, width: int, activation: str | None = None, seed: int = 0):
    keras.utils.set_random_seed(seed)
    inputs, dense = spec.keras_inputs()
    hidden = keras.layers.Dense(8, activation="relu")(dense)
    return keras.Model(inputs, keras.layers.Dense(width, activation=activation)(hidden))


def xgboost_booster(spec, frame: pd.DataFrame, head: str):
    import xgboost as xgb

    matrix = encoded_matrix(spec, frame)
    y = frame["y"].to_numpy()
    params = {"max_depth": 3, "eta": 0.3, "seed": 0}
    if head == "multiclass":
        params.update(objective="multi:softprob", num_class=3)
    elif head == "binary":
        params.update(objective="binary:logistic")
        y = (y == 2).astype(int)
    else:
        params.update(objective="reg:squarederror")
        y = frame["age"].to_numpy() / 10.0
    return xgb.train(params, xgb.DMatrix(matrix, y), num_boost_round=5)


def estimator(kind: str, head: str, frame: pd.DataFrame, spec) -> Fitted:
    """A fitted-estimator stand-in of one kind ("keras" | "xgboost") and head."""
    labels = {"multiclass": LABELS, "binary": ["no", "yes"], "regression": None}[head]
    if kind == "keras":
        width, activation, outputs = {
            "multiclass": (3, None, "logits"),
            "binary": (1, "sigmoid", "probabilities"),
            "regression": (1, None, "predictions"),
        }[head]
        model = keras_model(spec, width, activation)
    else:
        model = xgboost_booster(spec, frame, head)
        outputs = "predictions" if head == "regression" else "probabilities"
    return Fitted(kind=kind, model=model, feature_spec=spec, head=head, class_labels=labels, model_outputs=outputs)


def expected_outputs(fitted: Fitted, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The prediction keys computed in Python from the model itself (what est.predict gives)."""
    parts = fitted.parts
    spec, head = parts["feature_spec"], parts["head"]
    if parts["kind"] == "keras":
        raw = np.asarray(parts["model"].predict(encoded(spec, frame), verbose=0), dtype=np.float64)
    else:
        import xgboost as xgb

        raw = parts["model"].predict(xgb.DMatrix(encoded_matrix(spec, frame))).astype(np.float64)
    if head == "regression":
        return {"predictions": raw.reshape(-1, 1)}
    labels = np.asarray(parts["class_labels"])
    if head == "binary":
        p = raw.reshape(-1, 1)
        clipped = np.clip(p, 1e-7, 1 - 1e-7)
        ids = (p > 0.5).astype(np.int64)
        return {
            "logits": np.log(clipped / (1 - clipped)),
            "logistic": p,
            "probabilities": np.hstack([1 - p, p]),
            "class_ids": ids,
            "classes": labels[ids],
        }
    if parts["model_outputs"] == "logits":
        logits = raw
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    else:
        probabilities, logits = raw, np.log(np.clip(raw, 1e-7, None))
    ids = probabilities.argmax(axis=1).reshape(-1, 1)
    return {"logits": logits, "probabilities": probabilities, "class_ids": ids, "classes": labels[ids]}


def assert_predicted(got, expected: dict[str, np.ndarray], atol: float = 1e-5) -> None:
    """What lf.predict returns: every output by name as an array (one output too), equal to ``expected``."""
    assert isinstance(got, dict) and all(isinstance(v, np.ndarray) for v in got.values()), got
    assert_same_outputs(got, expected, atol)


def assert_same_outputs(got, expected: dict[str, np.ndarray], atol: float = 1e-5) -> None:
    if not isinstance(got, dict) and len(expected) == 1:  # one output comes back as its value, as TF Serving does
        got = {next(iter(expected)): got}
    assert set(got) == set(expected), (sorted(got), sorted(expected))
    for name, want in expected.items():
        if want.dtype.kind in "OU":
            assert np.asarray(got[name]).astype(str).tolist() == want.astype(str).tolist(), name
        else:
            np.testing.assert_allclose(
                np.asarray(got[name], dtype=np.float64), want, atol=atol, rtol=1e-5, err_msg=name
            )


def save_fitted(fitted: Fitted, folder) -> None:
    """Saves a keras-kind stand-in the way an estimator saves itself: files plus layerflow_model.json."""
    import json
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True)
    parts = fitted.parts
    parts["model"].save(folder / "model.keras")
    parts["feature_spec"].save(folder / "spec.json")
    (folder / "parts.json").write_text(json.dumps({k: parts[k] for k in ("head", "class_labels", "model_outputs")}))
    (folder / "layerflow_model.json").write_text(json.dumps({"loader": "tests.raw_models:load_fitted"}))


def load_fitted(folder) -> Fitted:
    import json
    from pathlib import Path

    folder = Path(folder)
    parts = json.loads((folder / "parts.json").read_text())
    return Fitted(
        kind="keras",
        model=keras.saving.load_model(folder / "model.keras"),
        feature_spec=lf.load_feature_spec(folder / "spec.json"),
        **parts,
    )
