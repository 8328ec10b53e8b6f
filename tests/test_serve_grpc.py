"""KServe v2's gRPC service on ``layerflow serve --grpc-port`` (a real process on loopback ports),
driven by ``tritonclient.grpc``, a client nobody here wrote: each RPC, raw and typed contents,
wrong shape / datatype / byte length (INVALID_ARGUMENT naming the input), unknown model
(NOT_FOUND), missing token (UNAUTHENTICATED), and the server keeps serving."""

import grpc
import numpy as np
import pytest

import layerflow as lf
from layerflow import keras
from tests.test_serve import free_port, start_server
from tests.test_serve_protocols import string_bundle

grpcclient = pytest.importorskip("tritonclient.grpc")
from onnx import TensorProto  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

TOKEN = "grpc-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("grpc_models")
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    lf.export_model(mlp, base, name="mlp")
    string_bundle(base / "echo" / "1", {"text": TensorProto.STRING})
    port = free_port()
    process, url = start_server(base, "--token", TOKEN, "--grpc-port", str(port))
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    yield client, mlp
    client.close()
    process.terminate()
    process.wait(timeout=30)


def infer_input(name, array, datatype="FP32"):
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def test_each_rpc_through_tritonclient(served):
    client, mlp = served
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mlp", headers=AUTH) and client.is_model_ready("mlp", "1", headers=AUTH)
    assert client.get_server_metadata(headers=AUTH).name == "layerflow"
    metadata = client.get_model_metadata("mlp", headers=AUTH)
    assert metadata.versions == ["1"] and metadata.inputs[0].datatype == "FP32"
    assert list(metadata.inputs[0].shape) == [-1, 4]
    name, output = metadata.inputs[0].name, metadata.outputs[0].name
    for rows in (1, 32):
        x = np.random.default_rng(rows).normal(size=(rows, 4)).astype("float32")
        result = client.infer(
            "mlp",
            [infer_input(name, x)],
            headers=AUTH,
            request_id="r7",
            outputs=[grpcclient.InferRequestedOutput(output)],
        )
        np.testing.assert_allclose(result.as_numpy(output), mlp.predict(x, verbose=0), atol=1e-5)
        assert result.get_response().id == "r7" and result.get_response().model_version == "1"


def test_bytes_inputs_and_outputs(served):
    client, _ = served
    text = np.array(["lima", "zürich"], dtype=object)
    result = client.infer("echo", [infer_input("text", text, "BYTES")], headers=AUTH)
    assert [v.decode() for v in result.as_numpy("text_out")] == ["lima", "zürich"]


def test_typed_contents_are_read_too(served):
    """A request with InferTensorContents instead of raw_input_contents (built with the client's messages)."""
    from tritonclient.grpc import service_pb2

    client, mlp = served
    metadata = client.get_model_metadata("mlp", headers=AUTH)
    x = np.arange(8, dtype="float32").reshape(2, 4) / 8
    request = service_pb2.ModelInferRequest(model_name="mlp")
    tensor = request.inputs.add(name=metadata.inputs[0].name, datatype="FP32", shape=[2, 4])
    tensor.contents.fp32_contents.extend(x.ravel().tolist())
    response = client._client_stub.ModelInfer(request, metadata=list(AUTH.items()))
    values = np.frombuffer(response.raw_output_contents[0], dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(values, mlp.predict(x, verbose=0), atol=1e-5)


def expect_error(call, code, *fragments):
    with pytest.raises(InferenceServerException) as caught:
        call()
    assert caught.value.status() == code, caught.value
    for fragment in fragments:
        assert fragment in caught.value.message(), caught.value.message()


def test_bad_requests_get_the_right_status_and_the_server_keeps_serving(served):
    from tritonclient.grpc import service_pb2

    client, _ = served
    name = client.get_model_metadata("mlp", headers=AUTH).inputs[0].name
    good = np.zeros((1, 4), dtype="float32")
    expect_error(
        lambda: client.infer("mlp", [infer_input(name, np.zeros((1, 3), "float32"))], headers=AUTH),
        "StatusCode.INVALID_ARGUMENT",
        f"Input {name!r} has shape [1, 3]",
    )
    expect_error(
        lambda: client.infer("mlp", [infer_input(name, good.astype("float64"), "FP64")], headers=AUTH),
        "StatusCode.INVALID_ARGUMENT",
        f"Input {name!r} has datatype FP64; the model expects FP32",
    )
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name=name, datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(b"\0" * 12)
    with pytest.raises(grpc.RpcError) as caught:  # the stub itself: tritonclient never sends a wrong length
        client._client_stub.ModelInfer(request, metadata=list(AUTH.items()))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"Input {name!r}: 12 bytes of raw contents; shape [1, 4] of FP32 needs 16" in caught.value.details()
    expect_error(
        lambda: client.infer(
            "mlp", [infer_input(name, good)], headers=AUTH, outputs=[grpcclient.InferRequestedOutput("nope")]
        ),
        "StatusCode.INVALID_ARGUMENT",
        "'nope'",
    )
    expect_error(
        lambda: client.infer("nope", [infer_input(name, good)], headers=AUTH),
        "StatusCode.NOT_FOUND",
        "Model 'nope' is not served",
    )
    expect_error(lambda: client.get_model_metadata("mlp", "9", headers=AUTH), "StatusCode.NOT_FOUND", "no version 9")
    expect_error(lambda: client.infer("mlp", [infer_input(name, good)]), "StatusCode.UNAUTHENTICATED", "bearer token")
    assert client.is_server_live()  # health needs no token
    assert client.infer("mlp", [infer_input(name, good)], headers=AUTH).as_numpy(
        client.get_model_metadata("mlp", headers=AUTH).outputs[0].name
    ).shape == (1, 3)
