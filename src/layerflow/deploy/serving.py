"""``lf.serve``: serve exported models over REST, its arguments checked before the server starts.

The server itself (``deploy/server.py``) needs the ``serve`` extra (Starlette, uvicorn); this
module does not, so ``layerflow.deploy`` imports without it and says what to install.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

from layerflow.errors import InvalidTypeError, InvalidValueError, MissingDependencyError, MissingFileError

SERVE_INSTALL = "pip install 'layerflow[serve]'"
MAX_PORT = 65535


def _whole_number(name: str, value: object, lowest: int, highest: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidTypeError(f"{name}={value!r} must be a whole number.")
    number = int(value)
    if number < lowest or (highest is not None and number > highest):
        expected = f"between {lowest} and {highest}" if highest is not None else f"at least {lowest}"
        raise InvalidValueError(f"{name}={value!r} must be {expected}.")
    return number


def _check_arguments(
    model_dir: str | os.PathLike[str],
    host: str,
    port: int,
    token: str | None,
    max_batch_size: int,
    batch_delay_ms: float,
    intra_op_threads: int,
    inter_op_threads: int,
    workers: int = 1,
    grpc_port: int | None = None,
) -> Path:
    if not isinstance(model_dir, (str, os.PathLike)):
        raise InvalidTypeError(f"model_dir must be a folder path; got {type(model_dir).__name__}.")
    folder = Path(model_dir)
    if not folder.is_dir():
        raise MissingFileError(
            f"Model directory {folder} does not exist; export a model first: "
            f"layerflow export RUN --out {folder} (or lf.export_run(run, {str(folder)!r}))."
        )
    if not isinstance(host, str) or not host.strip():
        raise InvalidValueError(f"host={host!r} must be an address to bind, e.g. '127.0.0.1'.")
    _whole_number("port", port, 0, MAX_PORT)
    if token is not None and (not isinstance(token, str) or not token):
        raise InvalidValueError("token must be a non-empty string (or None for no token).")
    _whole_number("max_batch_size", max_batch_size, 0)
    if isinstance(batch_delay_ms, bool) or not isinstance(batch_delay_ms, numbers.Real) or not batch_delay_ms >= 0:
        raise InvalidValueError(f"batch_delay_ms={batch_delay_ms!r} must be a number of milliseconds, 0 or more.")
    _whole_number("intra_op_threads", intra_op_threads, 0)
    _whole_number("inter_op_threads", inter_op_threads, 0)
    _whole_number("workers", workers, 1)
    if grpc_port is not None:
        _whole_number("grpc_port", grpc_port, 0, MAX_PORT)
        if workers > 1:
            raise InvalidValueError("grpc_port serves from one process; leave workers at 1 with it.")
    return folder


def serve(
    model_dir: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8501,
    token: str | None = None,
    max_batch_size: int = 0,
    batch_delay_ms: float = 2.0,
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    access_log: bool = False,
    workers: int = 1,
    grpc_port: int | None = None,
) -> None:
    """Serves every exported model under ``model_dir`` over REST until interrupted.

    Speaks TF Serving's REST protocol (``/v1/models/NAME:predict``) and KServe v2's
    (``/v2/models/NAME/infer``), with health, metadata, ``/metrics`` and ``/openapi.json``.
    New versions written under ``model_dir`` are picked up without a restart. Needs only
    the serving install (``pip install 'layerflow[serve]'``): neither Keras nor torch.

    Args:
        model_dir: the model base directory, ``<model_dir>/<name>/<version>/`` bundles as
            ``lf.export_model`` / ``lf.export_run`` write them.
        host: the address to bind; loopback unless told otherwise.
        port: the TCP port (0 picks a free one).
        token: when given, every route but health needs ``Authorization: Bearer <token>``.
        max_batch_size: above 0, concurrent requests are batched into one call of up to this many rows.
        batch_delay_ms: the longest a request waits for others to batch with.
        intra_op_threads: onnxruntime threads within one operator (0: onnxruntime's default).
        inter_op_threads: onnxruntime threads across operators (0: onnxruntime's default).
        access_log: log every request.
        workers: server processes on the one port (uvicorn workers), each with its own
            onnxruntime sessions.
        grpc_port: when given, KServe v2's gRPC service (``inference.GRPCInferenceService``)
            also listens on this port, with the same models, versions, token and errors.

    Returns:
        None, once the server is stopped (Ctrl-C or SIGTERM).

    Example:
        >>> lf.export_run("latest", "models")          # models/<name>/1/
        >>> lf.serve("models", port=8501)               # curl localhost:8501/v1/models/<name>:predict
    """
    folder = _check_arguments(
        model_dir,
        host,
        port,
        token,
        max_batch_size,
        batch_delay_ms,
        intra_op_threads,
        inter_op_threads,
        workers,
        grpc_port,
    )
    try:
        from layerflow.deploy.server import run_server
    except ImportError as error:
        raise MissingDependencyError(f"Serving needs the serve extra: {SERVE_INSTALL} ({error}).") from None
    run_server(
        str(folder),
        host=host,
        port=int(port),
        token=token,
        max_batch_size=int(max_batch_size),
        batch_delay_ms=float(batch_delay_ms),
        intra_op_threads=int(intra_op_threads),
        inter_op_threads=int(inter_op_threads),
        access_log=bool(access_log),
        workers=int(workers),
        grpc_port=None if grpc_port is None else int(grpc_port),
    )
