"""The REST server as a real process on a loopback port: protocols, hot reload, tokens, bad requests."""

import json
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

import layerflow as lf
from layerflow import keras

TOKEN = "s3cret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )
    lf.export_model(mlp, base, name="mlp", class_labels=["a", "b", "c"])
    return base, mlp


def start_server(base, *options):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "layerflow.cli", "serve", str(base), "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_server(process, url, "/v2/health/live")
    return process, url


def wait_for_server(process: subprocess.Popen, url: str, health: str = "/v2/health/ready") -> None:
    """Waits until the server ``process`` started answers 200 at ``url + health``; kills it and fails
    with its output if it does not within a minute."""
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}{health}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(process.stdout.read().decode())


@pytest.fixture(scope="module")
def server(models):
    process, url = start_server(models[0], "--token", TOKEN)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    yield client
    client.close()
    process.terminate()
    process.wait(timeout=30)


def test_server_process_imports_neither_keras_nor_torch(models):
    code = (
        "import sys; from layerflow.deploy.server import create_app; app = create_app(sys.argv[1]); "
        "app.state.repository.get('mlp'); bad = [m for m in ('keras', 'torch', 'jax') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(models[0])], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_tf_serving_protocol(server, models):
    _, mlp = models
    x = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    expected = mlp.predict(x, verbose=0)
    status = server.get("/v1/models/mlp").json()
    assert status["model_version_status"][0] == {
        "version": "1",
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    metadata = server.get("/v1/models/mlp/metadata").json()
    assert list(metadata["metadata"]["signature_def"]["signature_def"]) == ["serving_default"]
    assert server.get("/v1/models/mlp/signature").json()["signature"]["class_labels"] == ["a", "b", "c"]
    rows = server.post("/v1/models/mlp:predict", json={"instances": x.tolist()})
    assert rows.status_code == 200
    np.testing.assert_allclose(rows.json()["predictions"], expected, atol=1e-5)
    columns = server.post("/v1/models/mlp/versions/1:predict", json={"inputs": x.tolist()})
    np.testing.assert_allclose(columns.json()["outputs"], expected, atol=1e-5)


def test_kserve_v2_protocol(server, models):
    _, mlp = models
    assert server.get("/v2/health/ready").json() == {"ready": True}
    meta = server.get("/v2/models/mlp").json()
    assert meta["inputs"][0]["datatype"] == "FP32" and meta["inputs"][0]["shape"] == [-1, 4]
    assert server.get("/v2/models/mlp/ready").json()["ready"] is True
    x = np.random.default_rng(2).normal(size=(2, 4)).astype("float32")
    name = meta["inputs"][0]["name"]
    reply = server.post(
        "/v2/models/mlp/infer",
        json={"id": "r1", "inputs": [{"name": name, "shape": [2, 4], "datatype": "FP32", "data": x.ravel().tolist()}]},
    ).json()
    assert reply["id"] == "r1" and reply["model_version"] == "1"
    output = reply["outputs"][0]
    np.testing.assert_allclose(np.reshape(output["data"], output["shape"]), mlp.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        (
            "/v1/models/mlp:predict",
            {"instances": [[1.0, 2.0]]},
            400,
            "has shape [1, 2]; the model expects ['batch', 4]",
        ),
        ("/v1/models/mlp:predict", {"instances": [["a", "b", "c", "d"]]}, 400, "takes numbers; got the string 'a'"),
        ("/v1/models/mlp:predict", {"instances": [[1, 2], [3]]}, 400, "not a rectangular array of float32"),
        ("/v1/models/mlp:predict", {"rows": []}, 400, "either 'instances' (rows) or 'inputs'"),
        ("/v1/models/mlp:predict", {"inputs": {"wrong": [[1, 2, 3, 4]]}}, 400, "missing and ['wrong'] unknown"),
        ("/v1/models/nope:predict", {"instances": [[1, 2, 3, 4]]}, 404, "Model 'nope' is not served"),
        ("/v1/models/mlp/versions/9:predict", {"instances": [[1, 2, 3, 4]]}, 404, "has no version 9"),
        ("/v2/models/mlp/infer", {"inputs": [{"name": "x", "shape": [1, 4], "data": [1, 2]}]}, 400, "does not fill"),
    ],
)
def test_bad_requests_get_4xx_and_the_server_keeps_serving(server, path, body, status, message):
    reply = server.post(path, json=body)
    assert reply.status_code == status and message in reply.json()["error"]
    assert server.post("/v1/models/mlp:predict", json={"instances": [[0, 0, 0, 0]]}).status_code == 200


def test_non_json_nan_huge_bodies_and_tokens(server):
    reply = server.post("/v1/models/mlp:predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]
    reply = server.post("/v1/models/mlp:predict", content=b'{"instances": [[NaN, 1, 2, 3]]}')
    assert reply.status_code == 400 and "NaN or infinite" in reply.json()["error"]
    huge = b'{"instances": [' + b"[0,0,0,0]," * 12_000_000 + b"[0,0,0,0]]}"
    reply = server.post("/v1/models/mlp:predict", content=huge)
    assert reply.status_code == 413 and "exceeds the limit" in reply.json()["error"]
    anonymous = httpx.post(f"{server.base_url}/v1/models/mlp:predict", json={"instances": [[0, 0, 0, 0]]})
    assert anonymous.status_code == 401 and "bearer token" in anonymous.json()["error"]
    assert httpx.get(f"{server.base_url}/v2/health/live").status_code == 200  # health needs no token
    assert server.post("/v1/models/mlp:predict", json={"instances": [[0, 0, 0, 0]]}).status_code == 200


def test_new_version_is_picked_up_without_restart(server, models):
    base, _ = models
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    lf.export_model(other, base, name="mlp")
    deadline = time.time() + 10
    while time.time() < deadline and len(server.get("/v1/models/mlp").json()["model_version_status"]) < 2:
        time.sleep(0.2)
    assert [s["version"] for s in server.get("/v1/models/mlp").json()["model_version_status"]] == ["1", "2"]
    latest = server.post("/v1/models/mlp:predict", json={"instances": [[0, 0, 0, 1]]}).json()
    assert len(latest["predictions"][0]) == 2  # the new version answers by default
    first = server.post("/v1/models/mlp/versions/1:predict", json={"instances": [[0, 0, 0, 1]]}).json()
    assert len(first["predictions"][0]) == 3


def test_predict_is_the_same_call_for_a_folder_and_a_url(server, models, tmp_path):
    base, mlp = models
    x = np.random.default_rng(3).normal(size=(2, 4)).astype("float32")
    local = lf.predict(base, x, name="mlp", version=1)
    remote = lf.predict(str(server.base_url), x, name="mlp", version=1, token=TOKEN)
    # one output, named as the bundle's signature names it, whatever the transport
    outputs = [o["name"] for o in json.loads((base / "mlp" / "1" / "signature.json").read_text())["outputs"]]
    assert list(local) == list(remote) == outputs and len(outputs) == 1
    (output,) = outputs
    assert remote[output].dtype == local[output].dtype == np.float32
    np.testing.assert_allclose(local[output], mlp.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(remote[output], local[output], atol=1e-6)
    (tmp_path / "in.json").write_text(json.dumps({"instances": x.tolist()}))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "layerflow.cli",
            "predict",
            str(base / "mlp" / "1"),
            "--input",
            str(tmp_path / "in.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(json.loads(done.stdout)[output], local[output], atol=1e-6)
    with pytest.raises(lf.deploy.BundleError, match="answered 401"):
        lf.predict(str(server.base_url), x, name="mlp")
    with pytest.raises(lf.deploy.BundleError, match="has no version 5"):
        lf.predict(base, x, name="mlp", version=5)
    with pytest.raises(lf.deploy.BundleError, match="Cannot reach"):
        lf.predict("http://127.0.0.1:9", x, name="mlp", timeout=5)
    (tmp_path / "bad.json").write_text("{oops")
    done = subprocess.run(
        [sys.executable, "-m", "layerflow.cli", "predict", str(base), "--input", str(tmp_path / "bad.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Cannot read the inputs" in done.stderr


def test_tritonclient_speaks_to_the_v2_endpoints(server, models):
    import tritonclient.http as triton

    _, mlp = models
    client = triton.InferenceServerClient(url=str(server.base_url).removeprefix("http://"))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.is_server_live() and client.is_model_ready("mlp", headers=headers)
    metadata = client.get_model_metadata("mlp", model_version="1", headers=headers)
    x = np.random.default_rng(4).normal(size=(3, 4)).astype("float32")
    request = triton.InferInput(metadata["inputs"][0]["name"], list(x.shape), "FP32")
    request.set_data_from_numpy(x, binary_data=False)
    result = client.infer(
        "mlp",
        [request],
        model_version="1",
        headers=headers,
        outputs=[triton.InferRequestedOutput(metadata["outputs"][0]["name"], binary_data=False)],
    )
    np.testing.assert_allclose(result.as_numpy(metadata["outputs"][0]["name"]), mlp.predict(x, verbose=0), atol=1e-5)


def test_metrics_and_openapi(server):
    server.post("/v1/models/mlp:predict", json={"instances": [[0, 0, 0, 0]]})
    text = server.get("/metrics").text
    assert 'layerflow_requests_total{protocol="tf_serving",status="200"}' in text
    assert "layerflow_inference_seconds_bucket" in text
    document = server.get("/openapi.json").json()
    assert document["openapi"].startswith("3.") and "/v2/models/{name}/infer" in document["paths"]


def test_dynamic_batching_merges_concurrent_requests(models):
    import asyncio

    base, mlp = models
    process, url = start_server(base, "--max-batch-size", "32", "--batch-delay-ms", "20")
    try:
        rows = np.random.default_rng(5).normal(size=(24, 4)).astype("float32")

        async def fire():
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                replies = await asyncio.gather(
                    *(
                        client.post("/v1/models/mlp/versions/1:predict", json={"instances": [row.tolist()]})
                        for row in rows
                    )
                )
            return [r.json()["predictions"][0] for r in replies]

        predictions = asyncio.run(fire())
        np.testing.assert_allclose(predictions, mlp.predict(rows, verbose=0), atol=1e-5)
        metrics = httpx.get(f"{url}/metrics").text
        count = float(
            next(
                line.split()[-1]
                for line in metrics.splitlines()
                if line.startswith('layerflow_batch_rows_count{model="mlp"}')
            )
        )
        assert count < 24  # fewer onnxruntime calls than requests: they were batched
        bad = httpx.post(f"{url}/v1/models/mlp/versions/1:predict", json={"instances": [[1, 2]]})
        assert bad.status_code == 400
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_batchers_of_removed_versions_are_closed(models, tmp_path):
    import asyncio
    import shutil

    from layerflow.deploy.server import create_app

    base = tmp_path / "models"
    shutil.copytree(models[0] / "mlp" / "1", base / "mlp" / "1")
    app = create_app(str(base), poll_seconds=0, max_batch_size=8)
    body = {"instances": [[0.1, 0.2, 0.3, 0.4]]}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.post("/v1/models/mlp:predict", json=body)).status_code == 200
            first = app.state.batchers[("mlp", 1)]
            shutil.copytree(base / "mlp" / "1", base / "mlp" / "2")
            shutil.rmtree(base / "mlp" / "1")
            assert (await client.post("/v1/models/mlp:predict", json=body)).status_code == 200
            await asyncio.sleep(0)
            return first

    first = asyncio.run(scenario())
    assert set(app.state.batchers) == {("mlp", 2)}
    assert first._worker.cancelled() or first._worker.done()


def test_workers_serve_the_same_answers_from_several_processes(models):
    from pathlib import Path

    base, mlp = models
    process, url = start_server(base, "--workers", "2", "--token", TOKEN)
    try:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) >= 2  # uvicorn's worker processes
        x = np.random.default_rng(6).normal(size=(2, 4)).astype("float32")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            for _ in range(20):
                reply = client.post("/v1/models/mlp/versions/1:predict", json={"instances": x.tolist()})
                assert reply.status_code == 200, reply.text
                np.testing.assert_allclose(reply.json()["predictions"], mlp.predict(x, verbose=0), atol=1e-5)
            assert httpx.post(f"{url}/v1/models/mlp:predict", json={"instances": x.tolist()}).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=30)
    with pytest.raises(lf.LayerflowError, match="workers=0 must be at least 1"):
        lf.serve(base, workers=0)
