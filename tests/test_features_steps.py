"""Feature specs as values (steps return new specs), the sample standard deviation, and the spec operations
tfdatasets had: remove, exclusion in selectors, has_type, feature_types, vocabulary files, fit(dataset=),
names for dense outputs and a default embedding width."""

import numpy as np
import pandas as pd
import pytest

import layerflow as lf
from layerflow import keras
from layerflow.features import SpecColumnError, SpecError, SpecFileError


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "a": [1.0, 2.0, 4.0, 7.0, 11.0, 3.0],
            "b": [10, 20, 30, 40, 50, 60],
            "n": [0, 1, 2, 3, 0, 1],
            "city": ["oslo", "rome", "rome", "paris", "rome", "oslo"],
            "shop": ["s1", "s2", "s3", "s1", "s4", "s5"],
            "y": [0, 1, 1, 0, 1, 0],
        }
    )


def test_steps_return_new_specs_and_branches_do_not_share_steps(frame):
    base = lf.feature_spec(frame, label="y").numeric("a", "b", normalizer="standard").categorical_vocab("city")
    one_hot = base.indicator("city")
    embedded = base.embedding("city", dimension=2)
    assert one_hot is not base and embedded is not base
    assert [kind for kind, _, _ in base._steps] == ["numeric", "categorical_vocab"]
    assert one_hot.fit().keras_inputs()[1].shape == (None, 2 + 4)  # a, b + 3 cities and the OOV id
    assert embedded.fit().keras_inputs()[1].shape == (None, 2 + 2)
    fitted = base.fit()
    state = fitted.state()
    extended = fitted.numeric("n")  # a step on a fitted spec: a new, unfitted spec; the fitted one unchanged
    assert fitted.fitted and not extended.fitted and fitted.state() == state
    assert set(extended.fit().numeric_columns) == {"a", "b", "n"} and set(fitted.numeric_columns) == {"a", "b"}


def test_standard_scaler_uses_the_sample_standard_deviation_as_tfdatasets(frame):
    spec = lf.feature_spec(frame, label="y").numeric("a", normalizer="standard").fit()
    column = spec.numeric_columns["a"]
    assert column.mean == pytest.approx(14 / 3, rel=1e-12)
    assert column.std == pytest.approx(float(np.std(frame["a"], ddof=1)), rel=1e-12)  # n - 1
    assert column.std == pytest.approx(3.7237973450050506, rel=1e-12)
    big = lf.data.from_arrays(
        {"x": 1e9 + np.arange(10_001, dtype=np.float64), "y": np.zeros(10_001)}, rows_per_chunk=1000
    )
    streamed = lf.feature_spec(big, label="y").numeric("x").fit()
    # exact for large offsets too (merged per block, not sum of squares)
    assert streamed.numeric_columns["x"].std == pytest.approx(float(np.std(np.arange(10_001), ddof=1)), rel=1e-9)
    inputs, dense = spec.keras_inputs()
    scaled = keras.Model(inputs, dense).predict({"a": np.array([[column.mean + column.std]])}, verbose=0)
    assert scaled[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_remove_drops_declared_features(frame):
    spec = (
        lf.feature_spec(frame, label="y")
        .numeric("a", "b")
        .bucketized("b", boundaries=[25, 45])
        .indicator("b_bucketized")
        .remove("b")
        .fit()
    )
    assert list(spec.numeric_columns) == ["a"] and list(spec.categorical_columns) == ["b_bucketized"]
    encoded = spec.transform({k: frame[k].to_numpy() for k in frame})
    assert set(encoded) == {"a", "b_bucketized"} and encoded["b_bucketized"].ravel().tolist() == [0, 0, 1, 1, 2, 2]
    dropped = (
        lf.feature_spec(frame, label="y")
        .numeric(lf.all_numeric())
        .categorical_vocab("city")
        .indicator("city")
        .remove(lf.starts_with("city"), "n")
        .fit()
    )
    assert list(dropped.numeric_columns) == ["a", "b"] and not dropped.categorical_columns and not dropped.dense_columns
    crossed = (
        lf.feature_spec(frame, label="y")
        .bucketized("a", [5])
        .crossed(["a_bucketized", "city"], 8)
        .remove("a_bucketized")
    )
    with pytest.raises(SpecError, match=r"remove\('a_bucketized'\): \['a_bucketized_X_city'\] are built from it"):
        crossed.fit()
    with pytest.raises(SpecColumnError, match="remove\\(\\): column 'city' is not in the data"):
        lf.feature_spec(frame, label="y").numeric("a").remove("city").fit()


def test_selectors_exclude_and_has_type(frame):
    spec = lf.feature_spec(frame, label="y").numeric(lf.all_numeric(exclude=["b"])).fit()
    assert list(spec.numeric_columns) == ["a", "n"]
    assert list(lf.feature_spec(frame, label="y").numeric(lf.has_type("float")).fit().numeric_columns) == ["a"]
    assert list(lf.feature_spec(frame, label="y").numeric(lf.has_type("int")).fit().numeric_columns) == ["b", "n"]
    nominal = lf.feature_spec(frame, label="y").categorical_vocab(lf.has_type("string", exclude="shop")).fit()
    assert list(nominal.categorical_columns) == ["city"]
    by_name = lf.feature_spec(frame, label="y").categorical_vocab(lf.all_nominal(exclude=["city"])).fit()
    assert list(by_name.categorical_columns) == ["shop"]
    assert repr(lf.all_numeric(exclude=["b"])) == "all_numeric(exclude=['b'])"
    with pytest.raises(SpecError, match=r"has_type\('complex'\): not a known type; expected one of"):
        lf.has_type("complex")
    with pytest.raises(SpecError, match="selects no column"):
        lf.feature_spec(frame, label="y").numeric(lf.all_numeric(exclude=["a", "b", "n"])).fit()
    with pytest.raises(SpecError, match="exclude= takes column names"):
        lf.all_numeric(exclude=[1])


def test_feature_types_names_and_default_embedding_width(frame):
    spec = (
        lf.feature_spec(frame, label="y")
        .numeric("a")
        .categorical_vocab("city", "shop")
        .bucketized("b", [30])
        .crossed(["city", "b_bucketized"], 5)
        .indicator("city", name="city_onehot")
        .embedding("shop")
        .embedding("b_bucketized", dimension=3)
        .fit()
    )
    assert spec.feature_types() == {
        "a": "numeric",
        "city": "categorical_vocab",
        "shop": "categorical_vocab",
        "b_bucketized": "bucketized",
        "city_X_b_bucketized": "crossed",
        "city_onehot": "indicator",
        "shop_embedding": "embedding",
        "b_bucketized_embedding": "embedding",
    }
    assert spec.categorical_columns["shop"].depth == 6 and spec.dense_columns[1].dimension == 2  # ceil(6 ** 0.25)
    inputs, dense = spec.keras_inputs()
    model = keras.Model(inputs, dense)
    assert model.get_layer("city_onehot").name == "city_onehot" and model.get_layer("shop_embedding")
    assert dense.shape == (None, 1 + 4 + 2 + 3)
    assert lf.features.spec.default_embedding_dimension(81) == 3
    assert lf.features.spec.default_embedding_dimension(82) == 4
    assert {d["name"] for d in spec.state()["dense"]} == {"city_onehot", "shop_embedding", "b_bucketized_embedding"}
    with pytest.raises(SpecError, match="names one output"):
        lf.feature_spec(frame, label="y").indicator("city", "shop", name="both")
    with pytest.raises(SpecError, match="dimension=0 must be a positive integer"):
        lf.feature_spec(frame, label="y").embedding("city", dimension=0)


def test_vocabulary_file_and_fit_on_another_dataset(frame, tmp_path):
    vocabulary = tmp_path / "cities.txt"
    vocabulary.write_text("rome\nparis\n")
    spec = lf.feature_spec(frame, label="y").categorical_vocab("city", vocabulary_file=vocabulary).fit()
    assert spec.categorical_columns["city"].vocabulary == ["rome", "paris"]
    encoded = spec.transform({"city": np.array(["paris", "oslo", "rome", None], dtype=object)})
    assert encoded["city"].ravel().tolist() == [1, 2, 0, 2]
    with pytest.raises(SpecFileError, match="vocabulary_file '.*nope.txt' does not exist"):
        lf.feature_spec(frame).categorical_vocab("city", vocabulary_file=tmp_path / "nope.txt")
    (tmp_path / "dup.txt").write_text("a\nb\na\n")
    with pytest.raises(SpecError, match=r"lists \['a'\] more than once"):
        lf.feature_spec(frame).categorical_vocab("city", vocabulary_file=tmp_path / "dup.txt")
    with pytest.raises(SpecError, match="not both"):
        lf.feature_spec(frame).categorical_vocab("city", vocabulary=["x"], vocabulary_file=vocabulary)

    declared = lf.feature_spec(frame.head(2), label="y").numeric("a", normalizer="standard").categorical_vocab("city")
    fitted = declared.fit(dataset=lf.data.from_frame(frame).batch(4))
    assert fitted.numeric_columns["a"].count == 6 and fitted.numeric_columns["a"].mean == pytest.approx(14 / 3)
    assert fitted.categorical_columns["city"].vocabulary == ["rome", "oslo", "paris"]
    unbound = lf.feature_spec(None, label="y").numeric("a")
    with pytest.raises(SpecError, match="no dataset to fit on"):
        unbound.fit()
    assert unbound.fit(dataset=frame).numeric_columns["a"].max == 11.0
    with pytest.raises(TypeError, match=r"fit\(dataset=...\) takes a lf.data Dataset or a pandas DataFrame"):
        unbound.fit(dataset=[1, 2])


def test_vectorised_encoding_matches_the_per_value_definition(frame):
    rng = np.random.default_rng(3)
    words = np.array([f"w{i}" for i in range(50)], dtype=object)
    data = pd.DataFrame({"w": words[rng.integers(0, 50, 2000)], "k": rng.integers(0, 9, 2000), "y": 0})
    spec = (
        lf.feature_spec(data.head(1500), label="y")
        .categorical_vocab("w", num_oov_buckets=3, max_tokens=30)
        .categorical_vocab("k")
        .crossed(["w", "k"], 17)
        .fit()
    )
    batch = {"w": data["w"].to_numpy(), "k": data["k"].to_numpy()}
    encoded = spec.transform(batch)
    vocabulary = spec.categorical_columns["w"].vocabulary
    from layerflow.features.hashing import murmur3

    expected = [vocabulary.index(w) if w in vocabulary else 30 + murmur3(w) % 3 for w in batch["w"]]
    assert encoded["w"].ravel().tolist() == expected
    k_vocab = spec.categorical_columns["k"].vocabulary
    assert encoded["k"].ravel().tolist() == [k_vocab.index(str(k)) for k in batch["k"]]
    crossed = [murmur3(f"{w}\x1f{k}") % 17 for w, k in zip(batch["w"], batch["k"])]
    assert encoded["w_X_k"].ravel().tolist() == crossed


def test_a_csv_is_encoded_the_same_through_arrow_as_through_numpy(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text(
        "f,i,i_na,flag,s,y\n"
        "1.5,3,1,true,rome,0\n"
        "2.25,4,,false,,1\n"
        "NA,3,7,true,oslo,0\n"
        "0.5,9,1,false,rome,1\n"
        "3.0,4,2,true,paris,0\n"
    )
    source = lf.data.csv_dataset(path)
    spec = (
        lf.feature_spec(source, label="y")
        .numeric("f", normalizer="standard")
        .categorical_vocab("i_na", "flag", "s")
        .categorical_hash("i", hash_bucket_size=5)
        .crossed(["s", "i"], hash_bucket_size=7)
        .bucketized("f", [1.0, 2.0])
        .fit()
    )
    assert spec.categorical_columns["i_na"].vocabulary == ["1.0", "2.0", "7.0"]  # ints with a gap read as floats
    assert spec.categorical_columns["flag"].vocabulary == ["True", "False"]
    seen = []
    transform = spec.transform
    spec.transform = lambda batch, *args, **kwargs: (
        seen.append(type(batch).__name__) or transform(batch, *args, **kwargs)
    )
    through_arrow = list(spec.prepare(lf.data.csv_dataset(path, batch_size=2)))
    assert seen and set(seen) == {"RecordBatch"}  # the Arrow path was taken: Arrow batches were encoded as they are
    del spec.transform
    through_numpy = list(spec.prepare(lf.data.csv_dataset(path, batch_size=2).map(lambda batch: batch)))
    assert len(through_arrow) == len(through_numpy) == 3
    for (x_arrow, y_arrow), (x_numpy, y_numpy) in zip(through_arrow, through_numpy):
        assert set(x_arrow) == set(x_numpy) and np.array_equal(y_arrow, y_numpy) and y_arrow.dtype == np.int64
        for name in x_arrow:
            assert np.array_equal(x_arrow[name], x_numpy[name]), name
            assert x_arrow[name].dtype == x_numpy[name].dtype, name
    first = through_arrow[0][0]
    assert first["s"].ravel().tolist() == [0, 3] and first["f_bucketized"].ravel().tolist() == [1, 2]
    from layerflow.features.hashing import murmur3

    assert first["i"].ravel().tolist() == [murmur3("3") % 5, murmur3("4") % 5]
    assert first["i_na"].ravel().tolist() == [0, 3]  # a missing value is out of the vocabulary
    assert through_arrow[1][0]["f"].ravel()[0] == pytest.approx(spec.numeric_columns["f"].mean)  # missing -> mean


@pytest.mark.parametrize(
    "declare, column, first, second",
    [
        (lambda s: s.numeric("b").categorical_vocab("b"), "b", "numeric('b')", "categorical_vocab('b')"),
        (
            lambda s: s.categorical_vocab("city").numeric("a").categorical_hash("city", hash_bucket_size=4),
            "city",
            "categorical_vocab('city')",
            "categorical_hash('city')",
        ),
        (
            lambda s: s.numeric(lf.all_numeric()).categorical_identity("n", num_buckets=4),
            "n",
            "numeric(all_numeric()), which selected 'n'",
            "categorical_identity('n')",
        ),
        (lambda s: s.numeric("a").numeric("a", normalizer="standard"), "a", "numeric('a')", "numeric('a')"),
        (lambda s: s.numeric("a").bucketized("a", [3.0], name="a"), "a", "numeric('a')", "bucketized('a')"),
        (
            lambda s: s.categorical_vocab("city").indicator("city").indicator("city"),
            "city_indicator",
            "indicator('city')",
            "indicator('city')",
        ),
    ],
)
def test_two_steps_making_the_same_name_are_refused(frame, declare, column, first, second):
    # The same output name from two steps would let one silently replace the other (and Keras would get two
    # inputs of one name); TensorFlow's feature columns refuse it too ("Duplicate feature column name").
    with pytest.raises(SpecError) as raised:
        declare(lf.feature_spec(frame, label="y")).fit()
    message = str(raised.value)
    assert f"Column {column!r} is declared twice: by {first} and by {second};" in message, message
    assert f".remove({column!r})" in message


def test_one_column_feeding_several_features_under_their_own_names_is_kept(frame):
    # As in tfdatasets: a column may be numeric and bucketized, crossed, one-hot and embedded at once.
    spec = (
        lf.feature_spec(frame, label="y")
        .numeric("a", normalizer="standard")
        .bucketized("a", [3.0, 6.0])
        .categorical_vocab("city")
        .crossed(["city", "a_bucketized"], hash_bucket_size=8)
        .indicator("city")
        .embedding("city", dimension=2)
        .fit()
    )
    assert spec.feature_types() == {
        "a": "numeric",
        "city": "categorical_vocab",
        "a_bucketized": "bucketized",
        "city_X_a_bucketized": "crossed",
        "city_indicator": "indicator",
        "city_embedding": "embedding",
    }
    encoded = spec.transform({name: frame[name].to_numpy() for name in frame})
    assert encoded["a"].ravel().tolist() == frame["a"].tolist()  # the numeric column is the raw value, not an id
    # remove() then declaring the column again is the way to change how it is encoded.
    redeclared = lf.feature_spec(frame, label="y").numeric("b").remove("b").categorical_vocab("b").fit()
    assert redeclared.feature_types() == {"b": "categorical_vocab"}
