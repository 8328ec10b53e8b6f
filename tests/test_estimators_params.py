"""Estimators show their parameters: explicit constructor keywords, get_params/set_params, repr."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

import layerflow as lf

E = lf.estimators
PUBLIC = [
    E.LinearRegressor,
    E.LinearClassifier,
    E.DNNRegressor,
    E.DNNClassifier,
    E.DNNLinearCombinedRegressor,
    E.DNNLinearCombinedClassifier,
    E.Estimator,
    E.BoostedTreesRegressor,
    E.BoostedTreesClassifier,
]


def small_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(0, 1, n), "city": rng.choice(["x", "y"], n)})
    frame["y"] = (frame.a > 0).astype(int)
    return frame


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_each_constructor_names_its_keywords_and_get_params_gives_them_back(cls):
    signature = inspect.signature(cls)
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    assert {"label", "feature_columns", "model_dir", "seed", "batch_size", "weight_column"} <= set(signature.parameters)
    classifier = cls.__name__.endswith("Classifier") or cls is E.Estimator
    assert ("n_classes" in signature.parameters) == classifier
    est = cls(label="y", **({"hidden_units": [4]} if "hidden_units" in signature.parameters else {}))
    params = est.get_params()
    assert list(params) == list(signature.parameters)
    assert type(est)(**params).get_params() == params
    from sklearn.base import clone

    assert clone(est).get_params() == params  # scikit-learn's own clone accepts it
    params["label"] = "changed"
    assert est.get_params()["label"] == "y"  # a copy


def test_an_unknown_keyword_is_a_clear_error_listing_the_accepted_ones():
    with pytest.raises(
        E.EstimatorError,
        match=r"DNNClassifier\(\) got the unknown keyword hidden_unit; "
        r"it accepts label, hidden_units, .*seed\.",
    ):
        E.DNNClassifier(label="y", hidden_unit=[8])
    with pytest.raises(E.EstimatorError, match=r"unknown keywords n_trees, depth"):
        E.LinearClassifier(label="y", n_trees=3, depth=2)
    with pytest.raises(E.EstimatorError, match=r"missing a required argument: 'label'"):
        E.BoostedTreesRegressor()
    with pytest.raises(E.EstimatorError, match=r"n_classes .*for classifiers"):
        E.BoostedTreesRegressor(label="y", n_classes=3)


def test_repr_shows_the_parameters_given_other_values_than_their_defaults():
    assert (
        repr(E.DNNClassifier(label="y", hidden_units=[8], n_classes=3, learning_rate=0.05))
        == "DNNClassifier(label='y', hidden_units=[8], n_classes=3)"
    )
    assert (
        repr(E.BoostedTreesRegressor(label="price", max_depth=3)) == "BoostedTreesRegressor(label='price', max_depth=3)"
    )

    def model_fn(inputs, dense, params):
        return dense

    assert (
        repr(E.Estimator(model_fn, label="y", head="binary"))
        == "Estimator(model_fn=test_repr_shows_the_parameters_given_other_values_than_their_defaults.<locals>.model_fn, "
        "label='y', head='binary')"
    )


def test_set_params_checks_as_the_constructor_does_and_keeps_a_trained_model_safe(tmp_path):
    est = E.DNNClassifier(label="y", hidden_units=[8])
    assert est.set_params(hidden_units=[4, 2], dropout=0.1) is est
    assert est.hidden_units == [4, 2] and est.dropout == 0.1 and est.get_params()["hidden_units"] == [4, 2]
    with pytest.raises(E.EstimatorError, match="dropout=3"):
        est.set_params(dropout=3)
    assert est.dropout == 0.1  # unchanged
    with pytest.raises(E.EstimatorError, match="unknown parameter hidden; it accepts label, hidden_units"):
        est.set_params(hidden=[3])

    frame = small_frame()
    trained = E.LinearClassifier(label="y", seed=0).train(frame, epochs=1)
    with pytest.raises(E.EstimatorError, match="would discard its model"):
        trained.set_params(batch_size=32)
    assert trained.trained

    kept = E.LinearClassifier(label="y", seed=0, model_dir=tmp_path / "m").train(frame, epochs=1)
    kept.set_params(batch_size=32)  # reopens its model_dir: still trained, resumes there
    assert kept.trained and kept.batch_size == 32 and kept.epochs_done == 1
    with pytest.raises(E.ModelDirError, match="another configuration"):
        kept.set_params(l2=0.5)
    assert kept.l2 == 0.0 and kept.trained


def test_load_builds_the_estimator_from_its_saved_parameters(tmp_path):
    frame = small_frame()
    E.DNNClassifier(
        label="y", hidden_units=[4], batch_size=50, shuffle_buffer=None, seed=3, model_dir=tmp_path / "d"
    ).train(frame, epochs=1)
    loaded = E.load(tmp_path / "d")
    params = loaded.get_params()
    assert (params["hidden_units"], params["batch_size"], params["shuffle_buffer"], params["seed"]) == (
        [4],
        50,
        None,
        3,
    )
    assert params["model_dir"] == tmp_path / "d" and loaded.trained and loaded.epochs_done == 1
