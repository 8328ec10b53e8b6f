"""lf.estimators: every kind trains, evaluates and predicts on real data; options; bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import layerflow as lf

E = lf.estimators
CLASSIFIER_METRICS = {
    "loss",
    "average_loss",
    "accuracy",
    "accuracy_baseline",
    "auc",
    "auc_precision_recall",
    "precision",
    "recall",
    "label/mean",
    "prediction/mean",
    "global_step",
}
REGRESSOR_METRICS = {"loss", "average_loss", "mse", "mae", "r2", "label/mean", "prediction/mean", "global_step"}


def make_frame(n: int = 800, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.uniform(18, 70, n),
            "city": rng.choice(["lima", "oslo", "rome", "kyiv"], n),
            "job": rng.choice(["dev", "ops"], n),
            "income": rng.normal(50, 10, n),
        }
    )
    logit = 0.12 * (frame.age - 44) + np.where(frame.city == "oslo", 2.0, -0.5) + np.where(frame.job == "dev", 0.8, 0)
    frame["y"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    frame["price"] = 0.5 * frame.age + np.where(frame.city == "rome", 5.0, 0.0) + rng.normal(0, 0.5, n)
    return frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


def mixed_spec(frame: pd.DataFrame):
    spec = lf.feature_spec(frame.drop(columns=["price"]), label="y")
    spec = spec.numeric("age", "income", normalizer="standard")
    spec = spec.categorical_vocab("city", "job")
    spec = spec.bucketized("age", boundaries=[30, 45, 60])
    spec = spec.crossed(["city", "job"], hash_bucket_size=16)
    spec = spec.indicator("job")
    spec = spec.embedding("city", dimension=3)
    return spec


@pytest.mark.parametrize(
    "make",
    [
        lambda spec: E.LinearClassifier(label="y", feature_columns=spec, optimizer="Adam", learning_rate=0.05, seed=1),
        lambda spec: E.DNNClassifier(
            label="y",
            hidden_units=[16, 8],
            feature_columns=spec,
            optimizer="Adam",
            learning_rate=0.01,
            dropout=0.1,
            batch_norm=True,
            seed=1,
        ),
        lambda spec: E.DNNLinearCombinedClassifier(
            label="y",
            hidden_units=[8],
            feature_columns=spec,
            optimizer="Adam",
            learning_rate=0.02,
            linear_feature_columns=["city_X_job", "age_bucketized"],
            seed=1,
        ),
        lambda spec: E.BoostedTreesClassifier(label="y", feature_columns=spec, n_trees=30, max_depth=3, seed=1),
    ],
    ids=["linear", "dnn", "wide_deep", "trees"],
)
def test_classifiers_learn_with_string_bucketized_and_crossed_columns(frame, make):
    est = make(mixed_spec(frame))
    est.train(frame, epochs=8)
    metrics = est.evaluate(frame)
    assert set(metrics) == CLASSIFIER_METRICS
    assert metrics["accuracy"] > metrics["accuracy_baseline"] + 0.1
    assert metrics["auc"] > 0.8
    predictions = est.predict(frame.drop(columns=["y", "price"]).head(5))
    assert list(predictions.columns) == [
        "logits",
        "logistic",
        "probabilities",
        "class_ids",
        "classes",
        "all_class_ids",
        "all_classes",
    ]
    np.testing.assert_allclose(np.stack(predictions.probabilities).sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(predictions.logistic, np.stack(predictions.probabilities)[:, 1], rtol=1e-6)
    assert set(predictions.classes) <= {"0", "1"}
    # with the label column present too, and as fewer keys
    assert est.predict(frame.head(5), keys=["class_ids"]).class_ids.tolist() == predictions.class_ids.tolist()


@pytest.mark.parametrize(
    "cls, options",
    [
        (E.LinearRegressor, {"optimizer": "Adam", "learning_rate": 0.5}),
        (E.DNNRegressor, {"hidden_units": [16], "optimizer": "Adam", "learning_rate": 0.05}),
        (E.DNNLinearCombinedRegressor, {"hidden_units": [16], "optimizer": "Adam", "learning_rate": 0.1}),
        (E.BoostedTreesRegressor, {"n_trees": 50, "max_depth": 3}),
    ],
)
def test_regressors_fit_an_auto_built_spec(frame, cls, options):
    data = frame.drop(columns=["y"])
    est = cls(label="price", seed=2, **options)
    est.train(data, epochs=30)
    metrics = est.evaluate(data)
    assert set(metrics) == REGRESSOR_METRICS
    assert metrics["r2"] > 0.9, metrics
    assert est.spec.fitted and "city" in est.spec.input_names and "price" not in est.spec.input_names
    assert list(est.predict(data.drop(columns=["price"]).head(3)).columns) == ["predictions"]


def test_multiclass_with_a_label_vocabulary_from_csv_parquet_and_datasets(tmp_path):
    rng = np.random.default_rng(3)
    n = 600
    x = rng.normal(size=(n, 2))
    species = np.asarray(["setosa", "virginica", "versicolor"])[np.argmax(np.c_[x[:, 0], x[:, 1], -x.sum(1)], axis=1)]
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "species": species})
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame.to_parquet(tmp_path / "train.parquet")
    vocabulary = ["setosa", "versicolor", "virginica"]
    for data in (
        tmp_path / "train.csv",
        str(tmp_path / "train.parquet"),
        lf.data.from_frame(frame),
        lf.data.csv_dataset(tmp_path / "train.csv", batch_size=50),
    ):
        est = E.DNNClassifier(
            label="species",
            hidden_units=[16],
            label_vocabulary=vocabulary,
            optimizer="Adam",
            learning_rate=0.05,
            seed=0,
        )
        est.train(data, epochs=10)
        assert est.evaluate(data)["accuracy"] > 0.9
    predictions = est.predict(frame.drop(columns=["species"]))
    assert "logistic" not in predictions.columns
    assert set(predictions.classes) <= set(vocabulary)
    assert (predictions.classes == frame.species).mean() > 0.9
    assert list(predictions.all_classes[0]) == vocabulary
    trees = E.BoostedTreesClassifier(label="species", label_vocabulary=vocabulary, n_trees=20).train(frame)
    assert trees.evaluate(frame)["accuracy"] > 0.9
    assert np.stack(trees.predict(frame).probabilities).shape == (n, 3)


def test_weight_column_shifts_the_model(frame):
    data = frame.drop(columns=["price"]).assign(w=np.where(frame.y == 1, 0.01, 1.0))
    plain = E.BoostedTreesClassifier(label="y", n_trees=20, weight_column="w", seed=1)
    plain.train(data)
    assert "w" not in plain.spec.input_names
    assert plain.predict(data, keys="logistic").logistic.mean() < 0.2
    unweighted = E.BoostedTreesClassifier(label="y", n_trees=20, seed=1).train(frame.drop(columns=["price"]))
    assert unweighted.predict(data, keys="logistic").logistic.mean() > 0.4


def test_unfitted_spec_is_fitted_and_large_vocabularies_are_embedded():
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"user": [f"u{i % 40}" for i in range(n)], "x": rng.normal(size=n)})
    frame["y"] = (frame.x + (frame.user.str[1:].astype(int) % 2) > 0.5).astype(int)
    est = E.DNNClassifier(
        label="y",
        hidden_units=[8],
        feature_columns=lf.feature_spec(frame, label="y").numeric("x").categorical_vocab("user"),
        seed=0,
    )
    est.train(frame, epochs=2)
    assert est.spec.fitted
    names = [layer.name for layer in est.model.layers]
    assert "dnn_user_embedding" in names  # 41 ids: embedded, not one-hot


def test_custom_estimator_from_a_model_fn(frame):
    keras = lf.keras

    def model_fn(inputs, dense, params):
        hidden = keras.layers.Dense(params["units"], activation="relu")(dense)
        return keras.layers.Dense(params["n_outputs"])(hidden)

    est = E.Estimator(
        model_fn,
        label="y",
        head="binary",
        params={"units": 8},
        feature_columns=mixed_spec(frame),
        optimizer="Adam",
        learning_rate=0.02,
        seed=0,
    )
    est.train(frame, epochs=5)
    assert est.evaluate(frame)["accuracy"] > 0.75
    parts = est.export_parts()
    assert parts["kind"] == "keras" and parts["head"] == "binary" and parts["model_outputs"] == "logits"


def test_export_parts_give_the_models_that_predict_uses(frame):
    spec = mixed_spec(frame).fit()
    data = frame.drop(columns=["price"])
    dnn = E.DNNLinearCombinedClassifier(label="y", hidden_units=[4], feature_columns=spec, seed=0).train(data, epochs=1)
    parts = dnn.export_parts()
    assert parts["feature_spec"] is dnn.spec and parts["class_labels"] == ["0", "1"]
    encoded = parts["encode"]({c: data[c].to_numpy() for c in data.columns})
    assert encoded["numeric_pack"].shape == (len(data), len(dnn.spec.numeric_columns))  # numbers enter as one input
    assert {n for n in encoded if n != "numeric_pack"} == set(dnn.spec.categorical_columns)
    logits = np.asarray(parts["model"].predict_on_batch(encoded)).reshape(-1)
    np.testing.assert_allclose(logits, np.concatenate(dnn.predict(data).logits), rtol=1e-5, atol=1e-6)

    trees = E.BoostedTreesRegressor(label="price", n_trees=5).train(frame.drop(columns=["y"]))
    parts = trees.export_parts()
    assert parts["kind"] == "xgboost" and parts["model_outputs"] == "predictions" and parts["class_labels"] is None
    assert parts["feature_names"] == trees.spec.input_names and parts["model"].feature_names is None
    import xgboost as xgb

    encoded = trees.spec.transform({c: frame[c].to_numpy() for c in frame.columns})
    matrix = xgb.DMatrix(np.column_stack([encoded[n].reshape(-1) for n in parts["feature_names"]]))
    np.testing.assert_allclose(parts["model"].predict(matrix), trees.predict(frame).predictions, rtol=1e-6)


def test_options_map_onto_xgboost_and_keras(frame):
    trees = E.BoostedTreesClassifier(
        label="y",
        n_trees=3,
        max_depth=2,
        learning_rate=0.3,
        l1=0.1,
        l2=2.0,
        tree_complexity=0.5,
        min_node_weight=1.5,
        center_bias=False,
        pruning_mode="post",
    )
    params = trees.params()
    assert (
        params["max_depth"],
        params["eta"],
        params["alpha"],
        params["lambda"],
        params["gamma"],
        params["min_child_weight"],
        params["base_score"],
    ) == (2, 0.3, 0.1, 2.0, 0.5, 1.5, 0.5)
    trees.train(frame.drop(columns=["price"]))
    assert trees.booster.num_boosted_rounds() == 3
    for name in ("Adagrad", "Ftrl", "RMSProp", "SGD"):
        est = E.LinearClassifier(label="y", optimizer=name, l1=0.001, l2=0.001)
        est.train(frame.drop(columns=["price"]), steps=2)
        assert est.global_step == 2 and est.epochs_done == 0
    keras_optimizer = lf.keras.optimizers.Adam(0.01)
    est = E.DNNClassifier(label="y", hidden_units=[4], optimizer=keras_optimizer, activation="tanh")
    est.train(frame.drop(columns=["price"]), epochs=1)
    assert est.model.optimizer is keras_optimizer


# -- bad input ------------------------------------------------------------------------------


def test_bad_constructor_options_are_clear_errors():
    cases = [
        (lambda: E.DNNClassifier(label="y", hidden_units=[]), "hidden_units"),
        (lambda: E.DNNClassifier(label="y", hidden_units=[8], activation="wiggle"), "activation"),
        (lambda: E.DNNClassifier(label="y", hidden_units=[8], dropout=1.5), "dropout"),
        (lambda: E.LinearClassifier(label="y", optimizer="Adadelta9"), "optimizer"),
        (lambda: E.LinearClassifier(label="y", n_classes=1), "n_classes"),
        (lambda: E.LinearClassifier(label="y", n_classes=3, label_vocabulary=["a", "b"]), "n_classes"),
        (lambda: E.LinearRegressor(label="y", n_classes=3), "classifiers"),
        (lambda: E.LinearRegressor(label=None), "label"),
        (lambda: E.LinearRegressor(label="y", feature_columns="age"), "feature_columns"),
        (lambda: E.BoostedTreesClassifier(label="y", n_trees=0), "n_trees"),
        (lambda: E.BoostedTreesClassifier(label="y", pruning_mode="late"), "pruning_mode"),
        (lambda: E.BoostedTreesClassifier(label="y", tree_complexity=1.0), "pruning_mode"),
        (lambda: E.Estimator(lambda i, d, p: d, label="y", head="ordinal"), "head"),
    ]
    for make, word in cases:
        with pytest.raises(lf.LayerflowError, match=word):
            make()


def test_bad_data_is_a_clear_error(frame, tmp_path):
    data = frame.drop(columns=["price"])
    with pytest.raises(E.MissingColumnError, match=r"label column 'target' is not in the data; its columns are"):
        E.LinearClassifier(label="target").train(data, epochs=1)
    with pytest.raises(E.EstimatorError, match="NaN"):
        E.LinearClassifier(label="y").train(data.assign(y=np.where(data.index == 3, np.nan, data.y)), epochs=1)
    with pytest.raises(E.EstimatorError, match="n_classes=2; pass n_classes=4"):
        E.DNNClassifier(label="y", hidden_units=[4]).train(data.assign(y=data.index % 4), epochs=1)
    with pytest.raises(E.EstimatorError, match=r"\['maybe'\] which are not in label_vocabulary"):
        E.LinearClassifier(label="y", label_vocabulary=["no", "yes"]).train(
            data.assign(y=np.where(data.y == 1, "yes", "maybe")), epochs=1
        )
    with pytest.raises(E.EstimatorError, match="label_vocabulary"):
        E.BoostedTreesClassifier(label="y").train(data.assign(y=np.where(data.y == 1, "yes", "no")))
    with pytest.raises(E.EstimatorError, match="numbers"):
        E.LinearRegressor(label="city").train(data, epochs=1)
    with pytest.raises(E.EstimatorError, match="CSV/Parquet path"):
        E.LinearRegressor(label="y").train([1, 2, 3], epochs=1)
    with pytest.raises(E.EstimatorError, match="epochs"):
        E.LinearRegressor(label="y").train(data, epochs=0)
    spec = mixed_spec(frame).fit()
    est = E.LinearClassifier(label="y", feature_columns=spec)
    with pytest.raises(E.MissingColumnError, match=r"'city'.*its columns are \['age', 'income', 'job', 'y'\]"):
        est.train(data.drop(columns=["city"]), epochs=1)
    est.train(data, epochs=1)
    with pytest.raises(E.MissingColumnError, match="'job'"):
        est.predict(data.drop(columns=["job"]))
    with pytest.raises(E.MissingColumnError, match="label column 'y'"):
        est.evaluate(data.drop(columns=["y"]))
    with pytest.raises(E.EstimatorError, match="Prediction keys"):
        est.predict(data, keys=["scores"])


@pytest.mark.parametrize(
    "make", [lambda: E.DNNClassifier(label="y", hidden_units=[4]), lambda: E.BoostedTreesRegressor(label="y")]
)
def test_use_before_train_is_a_clear_error(frame, make, tmp_path):
    est = make()
    for call in (
        lambda: est.predict(frame),
        lambda: est.evaluate(frame),
        est.export_parts,
        lambda: est.save(tmp_path / "m"),
    ):
        with pytest.raises(E.NotTrainedError, match="call train"):
            call()


def test_lazy_attribute_on_the_package():
    import layerflow

    assert layerflow.estimators.DNNClassifier is E.DNNClassifier


def test_numeric_columns_enter_as_one_packed_input_and_older_checkpoints_still_load(frame, tmp_path, monkeypatch):
    spec = mixed_spec(frame).fit()
    est = E.DNNLinearCombinedClassifier(
        label="y",
        hidden_units=[4],
        feature_columns=spec,
        optimizer="Adam",
        learning_rate=0.05,
        linear_feature_columns=["income", "city"],
        seed=0,
        model_dir=tmp_path / "packed",
    ).train(frame, epochs=2)
    names = [t.name for t in lf.keras.tree.flatten(est.model.inputs)]
    assert "numeric_pack" in names and "age" not in names and "income" not in names
    assert est.model.get_layer("linear_numeric_chosen").indices == [1]  # the wide part reads income only
    assert lf.fast_fit_status(est.model)["train"] == "fast"
    loaded = E.load(tmp_path / "packed")
    np.testing.assert_allclose(loaded.predict(frame).logistic, est.predict(frame).logistic, rtol=1e-6)

    # a model_dir written with one input per numeric column (before packing) loads, predicts and trains on
    monkeypatch.setattr(E.DNNClassifier, "packs_numeric", False)
    old = E.DNNClassifier(
        label="y", hidden_units=[4], feature_columns=spec, seed=0, model_dir=tmp_path / "per-column"
    ).train(frame, epochs=1)
    assert {"age", "income"} <= {t.name for t in lf.keras.tree.flatten(old.model.inputs)}
    monkeypatch.undo()
    again = E.load(tmp_path / "per-column")
    np.testing.assert_allclose(again.predict(frame).logistic, old.predict(frame).logistic, rtol=1e-6)
    assert again.train(frame, epochs=2).epochs_done == 2
