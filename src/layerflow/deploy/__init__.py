"""Deployment: export trained models to ONNX bundles (TF Serving layout), serve them and predict with them.

Example:
    >>> from layerflow.deploy import export_run, predict, serve
    >>> export_run("latest", "models")             # models/<name>/1: model.onnx, signature.json, lineage.json
    >>> predict("models", x_test[:3])
    >>> serve("models", port=8501)                 # TF Serving and KServe v2 REST protocols
"""

from layerflow.deploy.bundle import BundleError, read_bundle, versions
from layerflow.deploy.export import EXPORTERS, export_model, onnx_predict
from layerflow.deploy.from_run import export_run
from layerflow.deploy.labels import read_labels, set_label
from layerflow.deploy.predict import predict
from layerflow.deploy.registry import list_models
from layerflow.deploy.serving import serve
from layerflow.deploy.web import build_web_page

__all__ = [
    "EXPORTERS",
    "BundleError",
    "build_web_page",
    "export_model",
    "export_run",
    "list_models",
    "onnx_predict",
    "predict",
    "read_bundle",
    "read_labels",
    "serve",
    "set_label",
    "versions",
]
