"""The exported web page of a raw-feature bundle: a form (a choice list per vocabulary column, number
fields for numeric ones) whose typed rows predict in headless Chromium what Python predicts."""

import html
import json
import re

import numpy as np
import pytest

import layerflow as lf
from layerflow.deploy.web import build_web_page
from tests.raw_models import (
    REQUEST_ROWS,
    assert_same_outputs,
    estimator,
    expected_outputs,
    fitted_spec,
    request_frame,
    training_frame,
)
from tests.test_web import CHROMIUM, render

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    base = tmp_path_factory.mktemp("web_models")
    frame = training_frame()
    spec = fitted_spec(frame)
    fitted = {
        "wide": estimator("keras", "multiclass", frame, spec),
        "trees": estimator("xgboost", "binary", frame, spec),
    }
    return {
        name: (lf.export_model(model, base, name=name), expected_outputs(model, request_frame()))
        for name, model in fitted.items()
    }


@pytest.mark.parametrize("name", ["wide", "trees"])
def test_form_rows_predict_like_python(tmp_path, bundles, name):
    bundle, expected = bundles[name]
    # every sample row is typed into the form and read back: known and unseen city, missing income and city
    page = build_web_page(bundle, tmp_path / "site", sample=REQUEST_ROWS)
    dom = render(page.parent, tmp_path)
    assert 'data-state="predicted"' in dom, dom[-3000:]
    assert '<select id="in-city">' in dom and '<option value="lima">lima</option>' in dom
    assert re.search(r'<input id="in-income" type="number" step="any"', dom)
    assert re.search(r'<input id="in-floor" type="number" step="1"', dom)
    outputs = json.loads(html.unescape(re.search(r'<pre id="output">(.*?)</pre>', dom, re.S).group(1)))
    assert_same_outputs(outputs, expected)
    # the last row shown as class labels with their probabilities
    labels = {"wide": ["low", "mid", "high"], "trees": ["no", "yes"]}[name]
    chosen = expected["classes"][-1][0]
    assert f'id="predicted-class">Predicted class: {chosen}</p>' in dom
    for label, probability in zip(labels, expected["probabilities"][-1]):
        assert f"<td>{label}</td><td>{probability:.4f}</td>" in dom


def test_a_bad_value_in_the_form_names_the_field(tmp_path, bundles):
    bundle, _ = bundles["wide"]
    # (a number field cannot hold letters: the browser keeps only numbers in it)
    page = build_web_page(bundle, tmp_path / "site", sample=[{**REQUEST_ROWS[0], "floor": 2.5}])
    dom = render(page.parent, tmp_path)
    assert 'data-state="error"' in dom and "'floor' takes a whole number." in dom, dom[-2000:]
    page = build_web_page(bundle, tmp_path / "site2", sample=[{**REQUEST_ROWS[0], "floor": None}])
    dom = render(page.parent, tmp_path)
    assert "'floor' needs a value." in dom


def test_plain_bundles_keep_the_json_page(tmp_path):
    from layerflow import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    bundle = lf.export_model(model, tmp_path / "models", name="plain")
    page = build_web_page(bundle, tmp_path / "site", sample=np.ones((1, 3)).tolist())
    assert '<textarea id="input">' in page.read_text() and 'id="features"' not in page.read_text()
