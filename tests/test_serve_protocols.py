"""TF Serving's and KServe v2's protocols as their specs state them, on a real server process on a
loopback port: b64 binary values, GetModelMetadataResponse, signature_name, version labels,
:classify/:regress refused, unknown requested outputs, and exports racing a polling server."""

import base64
import json
import os
import sys
import threading
import time

import httpx
import onnx
import pytest
from onnx import TensorProto, helper

import layerflow as lf
from layerflow import keras
from layerflow.deploy.labels import set_label
from tests.test_serve import start_server


def b64(text: str) -> dict:
    return {"b64": base64.b64encode(text.encode()).decode()}


def string_bundle(folder, inputs: dict[str, int]) -> None:
    """A bundle whose graph returns its inputs unchanged (``<name>_out``): strings come back as the
    server decoded them. ``inputs``: name -> ONNX element type."""
    names = {TensorProto.STRING: "string", TensorProto.FLOAT: "float32"}
    graph = helper.make_graph(
        [helper.make_node("Identity", [n], [f"{n}_out"]) for n in inputs],
        "echo",
        [helper.make_tensor_value_info(n, t, [None]) for n, t in inputs.items()],
        [helper.make_tensor_value_info(f"{n}_out", t, [None]) for n, t in inputs.items()],
    )
    folder.mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx"))
    signature = {
        "format": 1,
        "raw_inputs": True,
        "inputs": [{"name": n, "dtype": names[t], "shape": [None]} for n, t in inputs.items()],
        "outputs": [{"name": f"{n}_out", "dtype": names[t], "shape": [None]} for n, t in inputs.items()],
    }
    (folder / "signature.json").write_text(json.dumps(signature))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("protocol_models")
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    lf.export_model(mlp, base, name="mlp", class_labels=["a", "b", "c"])
    lf.export_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), base, name="mlp")
    string_bundle(base / "echo" / "1", {"text": TensorProto.STRING})
    string_bundle(base / "pair" / "1", {"text": TensorProto.STRING, "x": TensorProto.FLOAT})
    process, url = start_server(base)
    client = httpx.Client(base_url=url, timeout=30)
    yield client, base
    client.close()
    process.terminate()
    process.wait(timeout=30)


def ok_after(client) -> None:
    assert client.post("/v1/models/mlp:predict", json={"instances": [[0, 0, 0, 0]]}).status_code == 200


def test_b64_values_are_decoded_in_rows_columns_and_scalars(served):
    client, _ = served
    rows = client.post("/v1/models/echo:predict", json={"instances": [b64("lima"), "oslo", b64("zürich")]})
    assert rows.status_code == 200, rows.text
    assert rows.json()["predictions"] == ["lima", "oslo", "zürich"]
    named = client.post("/v1/models/pair:predict", json={"instances": [{"text": b64("quito"), "x": 1.5}]})
    assert named.status_code == 200, named.text
    assert named.json()["predictions"] == [{"text_out": "quito", "x_out": 1.5}]
    columns = client.post("/v1/models/pair:predict", json={"inputs": {"text": [b64("paris")], "x": [2.0]}})
    assert columns.json()["outputs"] == {"text_out": ["paris"], "x_out": [2.0]}
    scalar = client.post("/v1/models/echo:predict", json={"inputs": b64("oslo")})
    assert scalar.status_code == 200, scalar.text
    assert scalar.json()["outputs"] == ["oslo"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [{"b64": "not base64!"}]}, "Input 'text': 'not base64!' is not valid base64"),
        ({"instances": [{"text": {"b64": "bGltYQ==", "extra": 1}}]}, "exactly one key"),
        ({"instances": [{"b64": 12}]}, "must hold a base64 string"),
        ({"instances": [{"b64": base64.b64encode(b"\xff\xfe").decode()}]}, "not UTF-8 text"),
    ],
)
def test_bad_b64_is_a_400_naming_the_input(served, body, message):
    client, _ = served
    reply = client.post("/v1/models/echo:predict", json=body)
    assert reply.status_code == 400 and message in reply.json()["error"], reply.text
    reply = client.post("/v1/models/pair:predict", json={"instances": [{"text": "a", "x": b64("1")}]})
    assert reply.status_code == 400 and "Input 'x' takes numbers" in reply.json()["error"]
    ok_after(client)


def test_metadata_is_tf_servings_get_model_metadata_response(served):
    client, _ = served
    reply = client.get("/v1/models/mlp/versions/1/metadata").json()
    assert reply["model_spec"] == {"name": "mlp", "signature_name": "", "version": "1"}
    signature = reply["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    ((name, tensor),) = signature["inputs"].items()
    assert tensor["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in tensor["tensor_shape"]["dim"]] == ["-1", "4"]
    (output,) = signature["outputs"].values()
    assert [d["size"] for d in output["tensor_shape"]["dim"]] == ["-1", "3"]
    latest = client.get("/v1/models/mlp/metadata").json()
    assert latest["model_spec"]["version"] == "2"
    strings = client.get("/v1/models/pair/metadata").json()["metadata"]["signature_def"]["signature_def"]
    assert strings["serving_default"]["inputs"]["text"]["dtype"] == "DT_STRING"
    own = client.get("/v1/models/mlp/versions/1/signature").json()  # layerflow's own description
    assert own["signature"]["class_labels"] == ["a", "b", "c"] and own["model_spec"]["version"] == "1"


@pytest.mark.parametrize(
    "value, message",
    [
        ("nope", "Serving signature name: 'nope' not found"),
        (5, "'signature_name' must be a string"),
        (None, "'signature_name' must be a string"),
    ],
)
def test_signature_name_is_checked(served, value, message):
    client, _ = served
    reply = client.post("/v1/models/mlp:predict", json={"signature_name": value, "instances": [[0, 0, 0, 0]]})
    assert reply.status_code == 400 and message in reply.json()["error"], reply.text
    for good in ("serving_default", ""):
        reply = client.post("/v1/models/mlp:predict", json={"signature_name": good, "instances": [[0, 0, 0, 0]]})
        assert reply.status_code == 200, reply.text


def test_version_labels_route_predict_status_and_metadata(served):
    client, base = served
    set_label(base, "mlp", 1, "stable")
    set_label(base, "mlp", 2, "canary")
    status = client.get("/v1/models/mlp/labels/stable").json()
    assert [s["version"] for s in status["model_version_status"]] == ["1"]
    stable = client.post("/v1/models/mlp/labels/stable:predict", json={"instances": [[0, 0, 0, 1]]})
    assert stable.status_code == 200 and len(stable.json()["predictions"][0]) == 3
    canary = client.post("/v1/models/mlp/labels/canary:predict", json={"instances": [[0, 0, 0, 1]]})
    assert len(canary.json()["predictions"][0]) == 2
    assert client.get("/v1/models/mlp/labels/canary/metadata").json()["model_spec"]["version"] == "2"
    unknown = client.post("/v1/models/mlp/labels/gold:predict", json={"instances": [[0, 0, 0, 1]]})
    assert unknown.status_code == 400 and "Unrecognized servable version label" in unknown.json()["error"]
    malformed = client.get("/v1/models/mlp/labels/")
    assert malformed.status_code == 400 and "Malformed request" in malformed.json()["error"]
    assert client.post("/v1/models/mlp:explain", json={}).status_code == 400
    ok_after(client)


@pytest.mark.parametrize("verb", ["classify", "regress"])
def test_classify_and_regress_are_refused_naming_predict(served, verb):
    client, _ = served
    reply = client.post(f"/v1/models/mlp:{verb}", json={"examples": [{"x": [0, 0, 0, 0]}]})
    assert reply.status_code == 400 and "predictions" not in reply.json()
    assert f":{verb} is not supported" in reply.json()["error"] and ":predict" in reply.json()["error"]


def test_kserve_unknown_requested_output_is_a_400_naming_it(served):
    client, _ = served
    meta = client.get("/v2/models/mlp/versions/1").json()
    request = {
        "inputs": [{"name": meta["inputs"][0]["name"], "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}]
    }
    reply = client.post("/v2/models/mlp/versions/1/infer", json={**request, "outputs": [{"name": "nope"}]})
    assert reply.status_code == 400 and "'nope'" in reply.json()["error"], reply.text
    named = meta["outputs"][0]["name"]
    reply = client.post("/v2/models/mlp/versions/1/infer", json={**request, "outputs": [{"name": named}]})
    assert reply.status_code == 200 and [o["name"] for o in reply.json()["outputs"]] == [named]


def test_export_racing_a_polling_server_never_serves_a_half_written_version(tmp_path):
    """Versions are exported while a client asks for "latest" and a watcher lists the folder: the
    server answers every request 200, and no version folder is ever seen without its signature."""
    base = tmp_path / "models"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    lf.export_model(model, base, name="race")
    process, url = start_server(base)
    half_written, statuses, done = [], [], threading.Event()

    def watch():
        while not done.is_set():
            for entry in os.scandir(base / "race"):
                if (
                    entry.name.isdigit()
                    and os.path.exists(os.path.join(entry.path, "model.onnx"))
                    and not os.path.exists(os.path.join(entry.path, "signature.json"))
                ):
                    half_written.append(entry.name)

    def ask():
        with httpx.Client(base_url=url, timeout=30) as client:
            while not done.is_set():
                statuses.append(client.post("/v1/models/race:predict", json={"instances": [[0, 0, 0, 1]]}).status_code)

    threads = [threading.Thread(target=watch), threading.Thread(target=ask)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the watcher with the export as finely as possible
    try:
        for thread in threads:
            thread.start()
        for _ in range(8):
            lf.export_model(model, base, name="race")
            time.sleep(0.3)
    finally:
        done.set()
        sys.setswitchinterval(interval)
        for thread in threads:
            thread.join(timeout=60)
        process.terminate()
        process.wait(timeout=30)
    assert not half_written
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert not [p.name for p in (base / "race").iterdir() if p.name.startswith(".")]  # no staging folder left
