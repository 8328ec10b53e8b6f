"""The OpenAPI description of the server's routes (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
}
_LABEL = {
    "name": "label",
    "in": "path",
    "required": True,  # an unknown label is a 400, as in TF Serving
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_]*[A-Za-z_][A-Za-z0-9_]*$"},
}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_TFS_REQUEST = {
    "type": "object",
    "description": "Either 'instances' (one entry per row) or 'inputs' (one array per input, rows first).",
    "properties": {"instances": {"type": "array", "items": {}}, "inputs": {}, "signature_name": {"type": "string"}},
}
_V2_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "data": {"type": "array", "items": {}},
    },
}
_V2_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "items": _V2_TENSOR},
        "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
    },
}


def _answers(ok: str, *errors: int) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "200": {"description": ok, "content": {"application/json": {"schema": {"type": "object"}}}}
    }
    for code in errors:
        answers[str(code)] = {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
    return answers


def _get(summary: str, parameters: list, *errors: int) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": parameters, "responses": _answers(summary, *errors)}}


def _post(summary: str, parameters: list, schema: dict, *errors: int) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": parameters,
            "responses": _answers(summary, *errors),
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        }
    }


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.0 of the TF Serving and KServe v2 routes."""
    predict_errors = (400, 401, 404, 413)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "layerflow model server",
            "version": "1",
            "description": "TF Serving REST and KServe v2 (Open Inference Protocol) over onnxruntime.",
        },
        "paths": {
            "/v1/models/{name}": _get("Model version status", [_NAME], 400, 401, 404),
            "/v1/models/{name}/versions/{version}": _get("Status of one version", [_NAME, _VERSION], 400, 401, 404),
            "/v1/models/{name}/labels/{label}": _get("Status of the labelled version", [_NAME, _LABEL], 400, 401, 404),
            "/v1/models/{name}/metadata": _get("GetModelMetadataResponse (signature_def)", [_NAME], 400, 401, 404),
            "/v1/models/{name}/versions/{version}/metadata": _get(
                "Metadata of one version", [_NAME, _VERSION], 400, 401, 404
            ),
            "/v1/models/{name}/labels/{label}/metadata": _get(
                "Metadata of the labelled version", [_NAME, _LABEL], 400, 401, 404
            ),
            "/v1/models/{name}/signature": _get("layerflow's signature and lineage", [_NAME], 400, 401, 404),
            "/v1/models/{name}:predict": _post("Predict (latest version)", [_NAME], _TFS_REQUEST, *predict_errors),
            "/v1/models/{name}/versions/{version}:predict": _post(
                "Predict with a version", [_NAME, _VERSION], _TFS_REQUEST, *predict_errors
            ),
            "/v1/models/{name}/labels/{label}:predict": _post(
                "Predict with the labelled version", [_NAME, _LABEL], _TFS_REQUEST, *predict_errors
            ),
            "/v2/health/live": _get("Server is live", []),
            "/v2/health/ready": _get("Server is ready", []),
            "/v2/models/{name}": _get("Model metadata", [_NAME], 401, 404),
            "/v2/models/{name}/ready": _get("Model readiness", [_NAME], 401, 404),
            "/v2/models/{name}/infer": _post("Inference", [_NAME], _V2_REQUEST, *predict_errors),
            "/v2/models/{name}/versions/{version}/infer": _post(
                "Inference with a version", [_NAME, _VERSION], _V2_REQUEST, *predict_errors
            ),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
                    },
                }
            },
        },
    }
