"""Serving on a real Ray cluster (started on loopback) with Ray Serve: replicas, autoscaling bounds, removal."""

from __future__ import annotations

import concurrent.futures

import httpx
import numpy as np
import pytest

import layerflow as lf
from layerflow import keras
from layerflow.cloud.serving import DEPLOYMENT
from layerflow.cloud.serving import _client as serve_client
from tests.test_ray import LocalRayHead, _free_ports
from tests.test_serve import free_port

pytest.importorskip("ray.serve")
pytest.importorskip("ray.dashboard.modules.serve.sdk")

TOKEN = "s3cret"


@pytest.fixture(scope="module")
def ray_head():
    head = LocalRayHead()
    yield head
    head.stop()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )
    lf.export_model(mlp, base, name="mlp", class_labels=["a", "b", "c"])
    return base, mlp


@pytest.fixture(scope="module")
def serve_port():
    return free_port()


def _details(address: str) -> dict:
    return serve_client(address).get_serve_details()  # with the cluster's token, as layerflow connects


def _replica_states(address: str) -> list[str]:
    details = _details(address)
    deployment = details["applications"]["layerflow"]["deployments"][DEPLOYMENT]
    return [replica["state"] for replica in deployment["replicas"]]


@pytest.mark.slow
def test_replicas_answer_both_protocols_as_one_server_does(ray_head, models, serve_port):
    base, mlp = models
    status = lf.cloud.serve_on_ray(base, address=ray_head.address, replicas=2, token=TOKEN, port=serve_port)
    assert status["status"] == "RUNNING" and status["replicas"] == 2
    assert status["url"] == f"http://127.0.0.1:{serve_port}/"
    assert _replica_states(ray_head.address).count("RUNNING") == 2

    client = httpx.Client(base_url=status["url"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    expected = mlp.predict(x, verbose=0)

    def tf_serving(_):
        return client.post("/v1/models/mlp:predict", json={"instances": x.tolist()})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(tf_serving, range(40)))
    assert {a.status_code for a in answers} == {200}
    for answer in answers:
        np.testing.assert_allclose(answer.json()["predictions"], expected, atol=1e-5)

    name = client.get("/v2/models/mlp").json()["inputs"][0]["name"]
    v2 = client.post(
        "/v2/models/mlp/infer",
        json={"inputs": [{"name": name, "shape": [3, 4], "datatype": "FP32", "data": x.ravel().tolist()}]},
    )
    assert v2.status_code == 200, v2.text
    output = v2.json()["outputs"][0]
    np.testing.assert_allclose(np.reshape(output["data"], output["shape"]), expected, atol=1e-5)

    assert httpx.post(f"{status['url']}v1/models/mlp:predict", json={"instances": x.tolist()}).status_code == 401
    bad = client.post("/v1/models/mlp:predict", json={"instances": [[1, 2]]})
    assert bad.status_code == 400 and client.get("/v2/health/ready").status_code == 200


@pytest.mark.slow
def test_autoscaling_bounds_then_removal(ray_head, models, serve_port):
    base, _ = models
    status = lf.cloud.serve_on_ray(
        base, address=ray_head.address, min_replicas=1, max_replicas=2, port=serve_port, name="layerflow"
    )
    assert status["status"] == "RUNNING" and 1 <= status["replicas"] <= 2
    details = _details(ray_head.address)
    config = details["applications"]["layerflow"]["deployed_app_config"]["deployments"][0]
    assert config["autoscaling_config"]["min_replicas"] == 1 and config["autoscaling_config"]["max_replicas"] == 2
    assert lf.cloud.stop_serving(ray_head.address) is True
    assert "layerflow" not in (_details(ray_head.address).get("applications") or {})
    assert lf.cloud.stop_serving(ray_head.address) is False


def test_bad_arguments_fail_before_anything_is_deployed(models, tmp_path):
    base, _ = models
    with pytest.raises(lf.LayerflowError, match="replicas=0 must be at least 1"):
        lf.cloud.serve_on_ray(base, address="http://127.0.0.1:1", replicas=0)
    with pytest.raises(lf.LayerflowError, match="min_replicas=3 is above max_replicas=2"):
        lf.cloud.serve_on_ray(base, address="http://127.0.0.1:1", min_replicas=3, max_replicas=2)
    with pytest.raises(lf.LayerflowError, match="does not exist; export a model first"):
        lf.cloud.serve_on_ray(tmp_path / "nothing", address="http://127.0.0.1:1")
    with pytest.raises(lf.LayerflowError, match="Cannot reach a Ray cluster"):
        lf.cloud.serve_on_ray(base, address=f"http://127.0.0.1:{_free_ports(1)[0]}")


@pytest.mark.slow
def test_more_replicas_than_the_cluster_can_place_is_a_clear_error(ray_head, models, serve_port):
    base, _ = models
    with pytest.raises(lf.LayerflowError, match=r"not running after 15 s .*CPUs"):
        lf.cloud.serve_on_ray(
            base, address=ray_head.address, replicas=6, port=serve_port, name="too_many", wait_seconds=15
        )
    assert lf.cloud.stop_serving(ray_head.address, name="too_many") is True


@pytest.mark.slow
def test_command_line_deploys_and_removes(ray_head, models, serve_port, tmp_path):
    from tests.conftest import layerflow_cli

    base, _ = models
    deployed = layerflow_cli(
        "serve", str(base), "--ray", ray_head.address, "--replicas", "1", "--port", str(serve_port), cwd=tmp_path
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert f"Serving on Ray: http://127.0.0.1:{serve_port}/ (1 replica(s) running" in deployed.stdout
    assert httpx.get(f"http://127.0.0.1:{serve_port}/v1/models/mlp", timeout=30).status_code == 200
    removed = layerflow_cli("cloud", "unserve", "--address", ray_head.address, cwd=tmp_path)
    assert removed.returncode == 0 and "Removed Serve application 'layerflow'" in removed.stdout
    misuse = layerflow_cli("serve", str(base), "--replicas", "2", cwd=tmp_path)
    assert misuse.returncode == 2 and "need --ray ADDRESS" in misuse.stderr
