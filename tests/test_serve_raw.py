"""Raw feature rows through the real server (a process on a loopback port): TF Serving rows and
columns, KServe v2 with BYTES, lf.predict by URL; bad raw requests get a 4xx naming the feature."""

import numpy as np
import pytest

import layerflow as lf
from layerflow.deploy.bundle import BundleError
from tests.raw_models import (
    REQUEST_ROWS,
    assert_predicted,
    assert_same_outputs,
    estimator,
    expected_outputs,
    fitted_spec,
    request_frame,
    training_frame,
)
from tests.test_serve import start_server

TOKEN = "raw-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("raw_models")
    frame = training_frame()
    spec = fitted_spec(frame)
    fitted = {
        "wide": estimator("keras", "multiclass", frame, spec),
        "trees": estimator("xgboost", "binary", frame, spec),
    }
    for name, model in fitted.items():
        lf.export_model(model, base, name=name)
    process, url = start_server(base, "--token", TOKEN)
    import httpx

    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    yield client, url, {name: expected_outputs(model, request_frame()) for name, model in fitted.items()}
    client.close()
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.parametrize("name", ["wide", "trees"])
def test_tf_serving_rows_and_columns_give_the_python_outputs(served, name):
    client, url, expected = served
    rows = client.post(f"/v1/models/{name}:predict", json={"instances": REQUEST_ROWS})
    assert rows.status_code == 200, rows.text
    predictions = rows.json()["predictions"]
    assert_same_outputs({k: [p[k] for p in predictions] for k in predictions[0]}, expected[name])
    columns = {k: [row[k] for row in REQUEST_ROWS] for k in REQUEST_ROWS[0]}
    reply = client.post(f"/v1/models/{name}:predict", json={"inputs": columns})
    assert_same_outputs(reply.json()["outputs"], expected[name])
    # lf.predict through the server, from a DataFrame
    assert_predicted(lf.predict(url, request_frame(), name=name, token=TOKEN), expected[name])


def test_kserve_v2_with_bytes_strings(served):
    client, _, expected = served
    meta = client.get("/v2/models/wide").json()
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "age": "FP64",
        "income": "FP64",
        "city": "BYTES",
        "floor": "INT64",
    }
    assert {o["name"]: o["datatype"] for o in meta["outputs"]}["classes"] == "BYTES"
    n = len(REQUEST_ROWS)
    types = {"age": "FP64", "income": "FP64", "city": "BYTES", "floor": "INT64"}
    body = {
        "inputs": [
            {"name": k, "shape": [n], "datatype": types[k], "data": [row[k] for row in REQUEST_ROWS]} for k in types
        ]
    }
    reply = client.post("/v2/models/wide/infer", json=body)
    assert reply.status_code == 200, reply.text
    outputs = {
        o["name"]: np.reshape(np.asarray(o["data"], dtype=object if o["datatype"] == "BYTES" else float), o["shape"])
        for o in reply.json()["outputs"]
    }
    assert next(o for o in reply.json()["outputs"] if o["name"] == "classes")["datatype"] == "BYTES"
    assert_same_outputs(outputs, expected["wide"])


GOOD = REQUEST_ROWS[0]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [{k: v for k, v in GOOD.items() if k != "city"}]}, "['city'] missing"),
        ({"instances": [{**GOOD, "city": 5.5}]}, "Input 'city' takes strings (a category); got 5.5 (float)"),
        ({"instances": [{**GOOD, "city": True}]}, "Input 'city' takes strings (a category); got True (bool)"),
        ({"instances": [{**GOOD, "age": "forty"}]}, "Input 'age' takes numbers; got the string 'forty'"),
        ({"instances": [{**GOOD, "floor": None}]}, "Input 'floor' has a missing value"),
        ({"instances": [{**GOOD, "floor": 2.5}]}, "Input 'floor' takes whole numbers"),
        ({"instances": [{**GOOD, "income": [1, 2]}]}, "Input 'income'"),
        ({"instances": [GOOD, {k: v for k, v in GOOD.items() if k != "age"}]}, "Instance 1 lacks ['age']"),
        ({"inputs": {**{k: [v] for k, v in GOOD.items()}, "age": [41, 42]}}, "different numbers of rows"),
        ({"instances": [{**GOOD, "zip": "15001"}]}, "['zip'] unknown"),
    ],
)
def test_bad_raw_requests_get_400_naming_the_feature(served, body, message):
    client, _, _ = served
    reply = client.post("/v1/models/wide:predict", json=body)
    assert reply.status_code == 400 and message in reply.json()["error"], reply.text
    assert client.post("/v1/models/wide:predict", json={"instances": [GOOD]}).status_code == 200


def test_bad_kserve_bytes_and_lf_predict_errors(served):
    client, url, _ = served
    body = {
        "inputs": [
            {"name": "city", "shape": [1], "datatype": "BYTES", "data": [7.5]},
            *[{"name": k, "shape": [1], "datatype": "FP64", "data": [GOOD[k]]} for k in ("age", "income")],
            {"name": "floor", "shape": [1], "datatype": "INT64", "data": [3]},
        ]
    }
    reply = client.post("/v2/models/wide/infer", json=body)
    assert reply.status_code == 400 and "Input 'city' takes strings" in reply.json()["error"]
    with pytest.raises(BundleError, match="400: Input 'age' takes numbers"):
        lf.predict(url, [{**GOOD, "age": "old"}], name="wide", token=TOKEN)
    with pytest.raises(BundleError, match="Row 1 lacks \\['income'\\]"):
        lf.predict(url, [GOOD, {k: v for k, v in GOOD.items() if k != "income"}], name="wide", token=TOKEN)
    assert client.get("/v2/health/ready").status_code == 200


def test_batched_raw_requests_give_each_its_own_rows(tmp_path):
    """With --max-batch-size, concurrent raw-row requests (strings included) are batched and split back."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    frame = training_frame()
    fitted = estimator("keras", "multiclass", frame, fitted_spec(frame))
    lf.export_model(fitted, tmp_path, name="wide")
    process, url = start_server(tmp_path, "--max-batch-size", "16", "--batch-delay-ms", "20")
    try:

        def ask(i):
            row = REQUEST_ROWS[i % len(REQUEST_ROWS)]
            return i, httpx.post(f"{url}/v1/models/wide:predict", json={"instances": [row]}, timeout=30).json()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(16)))
        expected = expected_outputs(fitted, request_frame())
        for i, answer in answers:
            row = i % len(REQUEST_ROWS)
            assert_same_outputs(answer["predictions"][0], {k: v[row] for k, v in expected.items()})
        metrics = httpx.get(f"{url}/metrics").text
        import re

        batches = float(re.search(r'layerflow_batch_rows_count\{model="wide"\} ([\d.]+)', metrics).group(1))
        assert batches < 16  # some requests shared an onnxruntime call
    finally:
        process.terminate()
        process.wait(timeout=30)
