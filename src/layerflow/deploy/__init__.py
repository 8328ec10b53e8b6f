"""Deployment: export trained models to ONNX bundles (TF Serving layout) and run them."""

from layerflow.deploy.bundle import BundleError, read_bundle, versions
from layerflow.deploy.export import EXPORTERS, export_model, onnx_predict
from layerflow.deploy.predict import predict

__all__ = ["EXPORTERS", "BundleError", "export_model", "onnx_predict", "predict", "read_bundle", "versions"]
