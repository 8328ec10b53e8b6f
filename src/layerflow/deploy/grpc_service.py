"""KServe v2's gRPC service (``inference.GRPCInferenceService``) over the same repository as REST.

The messages are declared here, field by field with the numbers of the Open Inference
Protocol's ``grpc_predict_v2.proto`` (the wire format is the numbers, so any v2 client, e.g.
``tritonclient.grpc``, talks to it), and built at import with protobuf's descriptor pool: no
generated code and no protoc step. The ``parameters`` maps are not declared; protobuf skips
them as unknown fields.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from layerflow.deploy.repository import BadInput, LoadedModel, ModelNotFound, ModelRepository
from layerflow.errors import LayerflowError

SERVICE = "inference.GRPCInferenceService"
_F = descriptor_pb2.FieldDescriptorProto
_ONE, _MANY = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_T = {
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "int64": _F.TYPE_INT64,
    "int32": _F.TYPE_INT32,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "bytes": _F.TYPE_BYTES,
}

# message -> [(field, number, type or message, repeated)]
_MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, "bool", False)],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, "bool", False)],
    "ModelReadyRequest": [("name", 1, "string", False), ("version", 2, "string", False)],
    "ModelReadyResponse": [("ready", 1, "bool", False)],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [
        ("name", 1, "string", False),
        ("version", 2, "string", False),
        ("extensions", 3, "string", True),
    ],
    "ModelMetadataRequest": [("name", 1, "string", False), ("version", 2, "string", False)],
    "TensorMetadata": [("name", 1, "string", False), ("datatype", 2, "string", False), ("shape", 3, "int64", True)],
    "ModelMetadataResponse": [
        ("name", 1, "string", False),
        ("versions", 2, "string", True),
        ("platform", 3, "string", False),
        ("inputs", 4, ".inference.TensorMetadata", True),
        ("outputs", 5, ".inference.TensorMetadata", True),
    ],
    "InferTensorContents": [
        ("bool_contents", 1, "bool", True),
        ("int_contents", 2, "int32", True),
        ("int64_contents", 3, "int64", True),
        ("uint_contents", 4, "uint32", True),
        ("uint64_contents", 5, "uint64", True),
        ("fp32_contents", 6, "float", True),
        ("fp64_contents", 7, "double", True),
        ("bytes_contents", 8, "bytes", True),
    ],
    "InferInputTensor": [
        ("name", 1, "string", False),
        ("datatype", 2, "string", False),
        ("shape", 3, "int64", True),
        ("contents", 5, ".inference.InferTensorContents", False),
    ],
    "InferRequestedOutputTensor": [("name", 1, "string", False)],
    "ModelInferRequest": [
        ("model_name", 1, "string", False),
        ("model_version", 2, "string", False),
        ("id", 3, "string", False),
        ("inputs", 5, ".inference.InferInputTensor", True),
        ("outputs", 6, ".inference.InferRequestedOutputTensor", True),
        ("raw_input_contents", 7, "bytes", True),
    ],
    "InferOutputTensor": [
        ("name", 1, "string", False),
        ("datatype", 2, "string", False),
        ("shape", 3, "int64", True),
        ("contents", 5, ".inference.InferTensorContents", False),
    ],
    "ModelInferResponse": [
        ("model_name", 1, "string", False),
        ("model_version", 2, "string", False),
        ("id", 3, "string", False),
        ("outputs", 5, ".inference.InferOutputTensor", True),
        ("raw_output_contents", 6, "bytes", True),
    ],
}


def _build() -> dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(name="layerflow_inference_v2.proto", package="inference", syntax="proto3")
    for name, fields in _MESSAGES.items():
        message = file.message_type.add(name=name)
        for field, number, kind, repeated in fields:
            entry = message.field.add(name=field, number=number, label=_MANY if repeated else _ONE)
            if kind.startswith("."):
                entry.type, entry.type_name = _F.TYPE_MESSAGE, kind
            else:
                entry.type = _T[kind]
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"inference.{name}")) for name in _MESSAGES
    }


MESSAGES = _build()
_NUMPY = {
    "FP32": np.float32,
    "FP64": np.float64,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "UINT8": np.uint8,
    "FP16": np.float16,
}
_CONTENTS = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT32": "int_contents",
    "INT16": "int_contents",
    "INT8": "int_contents",
    "INT64": "int64_contents",
    "BOOL": "bool_contents",
    "BYTES": "bytes_contents",
    "UINT8": "uint_contents",
}
_V2_TYPES = {
    "float32": "FP32",
    "float64": "FP64",
    "int32": "INT32",
    "int64": "INT64",
    "bool": "BOOL",
    "string": "BYTES",
    "object": "BYTES",
}


class RpcError(LayerflowError, RuntimeError):
    """A request the gRPC service refuses: ``code`` is the gRPC status it answers with."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _unpack_bytes(name: str, raw: bytes) -> list[str]:
    """BYTES raw contents: each element a 4-byte little-endian length, then its bytes."""
    values, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadInput(f"Input {name!r}: its raw BYTES contents end inside a length prefix.")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise BadInput(f"Input {name!r}: an element of {size} bytes runs past the end of its raw contents.")
        values.append(raw[offset : offset + size].decode("utf-8", errors="strict"))
        offset += size
    return values


def _pack(array: np.ndarray) -> bytes:
    if array.dtype.kind in "OUS":
        parts = [str(v).encode() for v in array.ravel()]
        return b"".join(struct.pack("<I", len(p)) + p for p in parts)
    return np.ascontiguousarray(array).tobytes()


def _expected_type(model: LoadedModel, name: str) -> str | None:
    spec = next((s for s in model.input_specs if s["name"] == name), None)
    return None if spec is None else _V2_TYPES.get(spec["dtype"], spec["dtype"])


def _feed(model: LoadedModel, request: Any) -> dict[str, Any]:
    """The request's tensors as arrays by name, each checked against its datatype, shape and byte length."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise BadInput(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; send one per input."
        )
    columns: dict[str, Any] = {}
    for i, tensor in enumerate(request.inputs):
        name, datatype, shape = tensor.name, tensor.datatype, list(tensor.shape)
        expected = _expected_type(model, name)
        if expected is not None and datatype != expected:
            raise BadInput(f"Input {name!r} has datatype {datatype or 'none'}; the model expects {expected}.")
        if any(d < 0 for d in shape):
            raise BadInput(f"Input {name!r} has shape {shape}; dimensions must be 0 or more.")
        count = int(np.prod(shape)) if shape else 1
        try:
            if raw:
                if datatype == "BYTES":
                    values = np.asarray(_unpack_bytes(name, raw[i]), dtype=object)
                else:
                    width = np.dtype(_NUMPY[datatype]).itemsize
                    if len(raw[i]) != count * width:
                        raise BadInput(
                            f"Input {name!r}: {len(raw[i])} bytes of raw contents; shape {shape} of "
                            f"{datatype} needs {count * width}."
                        )
                    values = np.frombuffer(raw[i], dtype=_NUMPY[datatype])
            else:
                field = _CONTENTS.get(datatype)
                if field is None:
                    raise BadInput(
                        f"Input {name!r}: datatype {datatype or 'none'} has no typed contents; "
                        "send it in raw_input_contents."
                    )
                contents = list(getattr(tensor.contents, field))
                values = np.asarray(
                    [v.decode("utf-8") for v in contents] if datatype == "BYTES" else contents,
                    dtype=object if datatype == "BYTES" else _NUMPY[datatype],
                )
        except KeyError:
            raise BadInput(f"Input {name!r}: datatype {datatype!r} is not a KServe v2 datatype.") from None
        except UnicodeDecodeError:
            raise BadInput(f"Input {name!r}: a BYTES element is not UTF-8 text.") from None
        if values.size != count:
            raise BadInput(f"Input {name!r} holds {values.size} values; shape {shape} needs {count}.")
        columns[name] = values.reshape(shape)
    return model.check(columns)


def _version(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise BadInput(f"Version {text!r} is not a positive integer.")
    return int(text)


def grpc_handler(
    repository: ModelRepository, infer: Callable[[LoadedModel, dict], Awaitable[dict]], token: str | None = None
) -> Any:
    """The generic gRPC handler of ``inference.GRPCInferenceService`` (for ``grpc.aio.server``).

    Args:
        repository: the models served (the REST server's own).
        infer: the REST server's inference call (batching and metrics included).
        token: when given, every RPC but ServerLive/ServerReady needs ``authorization: Bearer <token>``.

    Returns:
        A ``grpc.GenericRpcHandler``.

    Example:
        >>> server.add_generic_rpc_handlers([grpc_handler(repository, infer, token)])
    """
    import grpc

    codes = {
        "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
        "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
        "UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
    }
    expected = f"Bearer {token}" if token else None

    async def server_live(request, context):
        return MESSAGES["ServerLiveResponse"](live=True)

    async def server_ready(request, context):
        return MESSAGES["ServerReadyResponse"](ready=True)

    async def server_metadata(request, context):
        return MESSAGES["ServerMetadataResponse"](name="layerflow", version="1", extensions=[])

    async def model_ready(request, context):
        repository.get(request.name, _version(request.version))
        return MESSAGES["ModelReadyResponse"](ready=True)

    async def model_metadata(request, context):
        model = repository.get(request.name, _version(request.version))

        def tensor(spec):
            return MESSAGES["TensorMetadata"](
                name=spec["name"],
                datatype=_V2_TYPES.get(spec["dtype"], spec["dtype"]),
                shape=[-1 if d is None else d for d in spec["shape"]],
            )

        return MESSAGES["ModelMetadataResponse"](
            name=model.name,
            versions=[str(v) for v in repository.versions_of(model.name)],
            platform="onnxruntime_onnx",
            inputs=[tensor(s) for s in model.input_specs],
            outputs=[tensor(s) for s in model.signature["outputs"]],
        )

    async def model_infer(request, context):
        model = repository.get(request.model_name, _version(request.model_version))
        feed = _feed(model, request)
        wanted = [o.name for o in request.outputs] or model.output_names
        unknown = [n for n in wanted if n not in model.output_names]
        if unknown:
            raise BadInput(
                f"Requested output(s) {unknown} are not outputs of model {model.name!r}; it has {model.output_names}."
            )
        outputs = await infer(model, feed)
        response = MESSAGES["ModelInferResponse"](
            model_name=model.name, model_version=str(model.version), id=request.id
        )
        for name in wanted:
            array = outputs[name]
            response.outputs.add(
                name=name, datatype=_V2_TYPES.get(str(array.dtype), str(array.dtype).upper()), shape=list(array.shape)
            )
            response.raw_output_contents.append(_pack(array))
        return response

    def guarded(method, open_to_all: bool):
        async def call(request, context):
            if expected and not open_to_all:
                sent = dict(context.invocation_metadata()).get("authorization", "")
                if sent != expected:
                    await context.abort(
                        codes["UNAUTHENTICATED"],
                        "Missing or wrong bearer token: send metadata 'authorization: Bearer <token>'.",
                    )
            try:
                return await method(request, context)
            except ModelNotFound as error:
                await context.abort(codes["NOT_FOUND"], str(error))
            except BadInput as error:
                await context.abort(codes["INVALID_ARGUMENT"], str(error))

        return call

    methods = {
        "ServerLive": (server_live, True),
        "ServerReady": (server_ready, True),
        "ServerMetadata": (server_metadata, False),
        "ModelReady": (model_ready, False),
        "ModelMetadata": (model_metadata, False),
        "ModelInfer": (model_infer, False),
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            guarded(method, open_to_all),
            request_deserializer=MESSAGES[f"{name}Request"].FromString,
            response_serializer=MESSAGES[f"{name}Response"].SerializeToString,
        )
        for name, (method, open_to_all) in methods.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)
