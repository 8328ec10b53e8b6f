"""Feature specs: one-pass fit, what they learn, encoding, Keras inputs, saving, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

import layerflow as lf
from layerflow import keras
from layerflow.features import NotFittedError


@pytest.fixture
def frame():
    rng = np.random.default_rng(1)
    n = 3000
    df = pd.DataFrame(
        {
            "a": rng.normal(3, 2, n),
            "b": rng.uniform(0, 10, n),
            "city": rng.choice(["paris", "rome", "oslo"], n, p=[0.5, 0.3, 0.2]),
            "shop": rng.integers(0, 5, n),
        }
    )
    df["y"] = ((df["a"] - 3) + 2 * (df["city"] == "rome") - df["b"] / 5 + 1 > 0).astype(int)
    return df


@pytest.fixture
def csv_path(tmp_path, frame):
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    return path


def test_the_issue_example_works_as_written(csv_path, frame):
    ds = lf.data.csv_dataset(str(csv_path), batch_size=512)
    spec = (
        lf.feature_spec(ds, label="y")
        .numeric("a", "b", normalizer="standard")
        .categorical_vocab("city")
        .indicator("city")
        .fit()
    )
    assert spec.numeric_columns["a"].mean == pytest.approx(frame["a"].mean(), rel=1e-4)
    assert spec.numeric_columns["b"].std == pytest.approx(frame["b"].std(ddof=0), rel=1e-3)
    assert spec.categorical_columns["city"].vocabulary == ["paris", "rome", "oslo"]  # by frequency
    assert "mean=" in repr(spec) and "vocabulary=['paris', 'rome', 'oslo']" in repr(spec)
    inputs, dense = spec.keras_inputs()
    assert set(inputs) == {"a", "b", "city"} and dense.shape == (None, 2 + 4)
    keras.utils.set_random_seed(0)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(dense))
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(0.05), metrics=["accuracy"])
    history = model.fit(spec.prepare(ds), epochs=10, verbose=0)
    assert history.history["accuracy"][-1] > 0.9


def test_encoding_oov_missing_and_normalisation_in_the_model(frame):
    spec = (
        lf.feature_spec(frame, label="y")
        .numeric("a", normalizer="minmax")
        .categorical_vocab("city")
        .indicator("city")
        .fit()
    )
    batch = {
        "a": np.array([frame["a"].min(), np.nan], dtype=np.float32),
        "city": np.array(["rome", "berlin"], dtype=object),
        "y": np.array([0, 1]),
    }
    encoded = spec.transform(batch)
    assert encoded["city"].ravel().tolist() == [1, 3]  # berlin was never seen: the out-of-vocabulary id
    assert encoded["a"][1, 0] == pytest.approx(frame["a"].mean(), rel=1e-4)  # missing -> mean
    inputs, dense = spec.keras_inputs()
    values = keras.Model(inputs, dense).predict(encoded, verbose=0)
    assert values[0, 0] == pytest.approx(0.0, abs=1e-5)  # min-max scaled inside the model
    assert values[:, 1:].tolist() == [[0, 1, 0, 0], [0, 0, 0, 1]]


def test_all_column_kinds_and_selectors(frame):
    spec = (
        lf.feature_spec(frame, label="y")
        .numeric(lf.all_numeric(exclude=["shop"]), normalizer="standard")  # shop: ids, declared below
        .categorical_hash("city", hash_bucket_size=7)
        .categorical_identity("shop", num_buckets=5)
        .bucketized("b", boundaries=[2.5, 5, 7.5])
        .crossed(["city", "b_bucketized"], hash_bucket_size=16)
        .indicator(lf.all_nominal())
        .embedding("city", dimension=3)
        .fit()
    )
    assert set(spec.numeric_columns) == {"a", "b"}  # the label is never a feature
    depths = {name: c.depth for name, c in spec.categorical_columns.items()}
    assert depths == {"city": 7, "shop": 6, "b_bucketized": 4, "city_X_b_bucketized": 16}
    encoded = spec.transform({k: frame[k].to_numpy()[:50] for k in frame})
    assert encoded["b_bucketized"].ravel().tolist() == np.digitize(frame["b"][:50], [2.5, 5, 7.5]).tolist()
    assert encoded["city_X_b_bucketized"].max() < 16 and encoded["shop"].max() < 5
    again = spec.transform({k: frame[k].to_numpy()[:50] for k in frame})
    assert np.array_equal(encoded["city"], again["city"])  # hashing is stable
    _, dense = spec.keras_inputs()
    assert dense.shape == (None, 2 + 7 + 6 + 4 + 16 + 3)
    model_inputs, dense = spec.keras_inputs()
    model = keras.Model(model_inputs, keras.layers.Dense(1, activation="sigmoid")(dense))
    model.compile(loss="binary_crossentropy", optimizer="adam")
    model.fit(spec.prepare(lf.data.from_frame(frame).batch(256)), epochs=1, verbose=0)


def test_save_and_load_keeps_what_was_learned(frame, tmp_path):
    spec = (
        lf.feature_spec(frame, label="y")
        .numeric("a", normalizer="standard")
        .categorical_vocab("city", max_tokens=2)
        .indicator("city")
        .fit()
    )
    assert spec.categorical_columns["city"].vocabulary == ["paris", "rome"]
    loaded = lf.load_feature_spec(spec.save(tmp_path / "spec.json"))
    batch = {k: frame[k].to_numpy()[:20] for k in frame}
    for name, values in spec.transform(batch).items():
        assert np.array_equal(values, loaded.transform(batch)[name])
    assert loaded.state() == spec.state()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a saved feature spec"):
        lf.load_feature_spec(tmp_path / "bad.json")


def _as_saved_before_murmur3(state: dict) -> dict:
    """The JSON the spec format before MurmurHash3 wrote (format 1, no hashing key): its buckets were CRC32's."""
    old = {key: value for key, value in state.items() if key != "hashing"}
    old["format"] = 1
    return old


@pytest.mark.parametrize(
    "declare, hashed",
    [
        (lambda s: s.categorical_hash("city", hash_bucket_size=5), ["city"]),
        (
            lambda s: s.bucketized("a", [2.0]).categorical_vocab("city").crossed(["city", "a_bucketized"], 8),
            ["city_X_a_bucketized"],
        ),
        (lambda s: s.categorical_vocab("city", max_tokens=1, num_oov_buckets=3), ["city"]),  # unseen values hashed
    ],
)
def test_a_spec_saved_with_crc32_buckets_is_refused(frame, tmp_path, declare, hashed):
    spec = declare(lf.feature_spec(frame, label="y").numeric("a")).fit()
    saved = json.loads(spec.save(tmp_path / "spec.json").read_text())
    assert saved["format"] == 2 and saved["hashing"] == "murmur3_x86_32/seed=0/utf-8"
    assert lf.load_feature_spec(tmp_path / "spec.json").state() == spec.state()
    (tmp_path / "old.json").write_text(json.dumps(_as_saved_before_murmur3(saved)))
    with pytest.raises(ValueError) as refused:
        lf.load_feature_spec(tmp_path / "old.json")
    message = str(refused.value)
    assert f"hashed columns {hashed}" in message and "CRC32" in message
    assert "Refit the spec" in message and "save the spec again" in message


def test_a_spec_saved_before_murmur3_without_hashed_columns_still_loads(frame, tmp_path):
    spec = (
        lf.feature_spec(frame, label="y")
        .numeric("a", normalizer="standard")
        .categorical_vocab("city")
        .bucketized("b", [2.5, 5.0])
        .indicator("city")
        .fit()
    )
    (tmp_path / "old.json").write_text(json.dumps(_as_saved_before_murmur3(spec.state())))
    loaded = lf.load_feature_spec(tmp_path / "old.json")
    batch = {k: frame[k].to_numpy()[:20] for k in frame}
    for name, values in spec.transform(batch).items():
        assert np.array_equal(values, loaded.transform(batch)[name])
    assert loaded.state() == spec.state()  # saved again, it is the current format
    for version, expected in ((3, "written by a newer layerflow"), ("2", "format '2'"), (None, "found no format")):
        (tmp_path / "other.json").write_text(json.dumps({**spec.state(), "format": version}))
        with pytest.raises(ValueError, match=expected):
            lf.load_feature_spec(tmp_path / "other.json")


def test_bad_specs_fail_clearly(frame):
    with pytest.raises(KeyError, match="column 'citty' is not in the data"):
        lf.feature_spec(frame, label="y").categorical_vocab("citty").fit()
    with pytest.raises(KeyError, match=r"Label column\(s\) \['label'\]"):
        lf.feature_spec(frame, label="label").numeric("a").fit()
    with pytest.raises(ValueError, match="normalizer='zscore' is not known"):
        lf.feature_spec(frame).numeric("a", normalizer="zscore")
    with pytest.raises(ValueError, match="increasing"):
        lf.feature_spec(frame).bucketized("b", [5, 1])
    with pytest.raises(NotFittedError, match="call .fit"):
        lf.feature_spec(frame, label="y").numeric("a").keras_inputs()
    with pytest.raises(TypeError, match="Dataset or a pandas DataFrame"):
        lf.feature_spec([1, 2, 3])
    with pytest.raises(ValueError, match="selects no column"):
        lf.feature_spec(frame, label="y").numeric(lf.starts_with("zz")).fit()
    spec = lf.feature_spec(frame, label="y").numeric("a").fit()
    with pytest.raises(KeyError, match=r"Columns \['a'\] used by the feature spec are not in the data"):
        spec.transform({"b": np.zeros(3)})
