"""``layerflow export | serve | predict``: exported models, served without the training stack."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from layerflow.cli.common import RunsDirOption, console, read_json_file
from layerflow.errors import InvalidValueError

app = typer.Typer()


@app.command("export")
def export_command(
    source: str = typer.Argument(..., help="A run (id, latest, latest~N) or a saved .keras model file."),
    out: Path = typer.Option(..., "--out", help="Model base directory; the bundle goes to OUT/NAME/VERSION."),
    name: str | None = typer.Option(None, "--name", help="Model name (default: the saved model's file name)."),
    version: int | None = typer.Option(None, "--version", help="Version number (default: the next free one)."),
    format: str = typer.Option(
        "onnx", "--format", help="onnx: a bundle for serving; web: a static page (OUT/index.html)."
    ),
    sample: Path | None = typer.Option(
        None, "--sample", help="With --format web: JSON inputs the page predicts on load."
    ),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Export a model to an ONNX bundle (model.onnx, signature.json, lineage.json) or a web page."""
    from layerflow.deploy import export_run

    inputs = read_json_file(sample, "the sample inputs") if sample else None
    written = export_run(source, out, name=name, version=version, format=format, sample=inputs, runs_dir=runs_dir)
    if format == "web":
        console.print(f"Web page: {written} (serve the folder over HTTP, e.g. python -m http.server -d {out})")
    else:
        console.print(f"Exported to {written}")


@app.command()
def serve(
    model_dir: Path = typer.Argument(..., help="Model base directory (MODEL_DIR/NAME/VERSION bundles)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback unless told otherwise)."),
    port: int = typer.Option(8501, "--port", help="TCP port."),
    token: str | None = typer.Option(None, "--token", help="Require 'Authorization: Bearer TOKEN' (not on health)."),
    max_batch_size: int = typer.Option(0, "--max-batch-size", help="Batch concurrent requests up to N rows (0: off)."),
    batch_delay_ms: float = typer.Option(2.0, "--batch-delay-ms", help="Longest wait for a batch to fill."),
    intra_op_threads: int = typer.Option(0, "--intra-op-threads", help="onnxruntime threads per call (0: default)."),
    inter_op_threads: int = typer.Option(
        0, "--inter-op-threads", help="onnxruntime threads across nodes (0: default)."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
    workers: int = typer.Option(1, "--workers", help="Server processes on the one port, each its own onnxruntime."),
    grpc_port: int | None = typer.Option(None, "--grpc-port", help="Also serve KServe v2 gRPC on this port."),
    ray_address: str | None = typer.Option(
        None,
        "--ray",
        help="Deploy on this Ray cluster (dashboard address, e.g. "
        "http://head:8265) as Ray Serve replicas instead of serving here.",
    ),
    replicas: int = typer.Option(
        1, "--replicas", help="With --ray: server replicas (initial number when autoscaling)."
    ),
    min_replicas: int | None = typer.Option(None, "--min-replicas", help="With --ray: autoscale from this many..."),
    max_replicas: int | None = typer.Option(None, "--max-replicas", help="...up to this many replicas."),
) -> None:
    """Serve every exported model under MODEL_DIR over REST (TF Serving and KServe v2 protocols)."""
    from layerflow.deploy import serve as run_server

    if ray_address is not None:
        from layerflow.cloud import serve_on_ray

        status = serve_on_ray(
            model_dir,
            address=ray_address,
            replicas=replicas,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            token=token,
            host=host,
            port=port,
        )
        console.print(
            f"Serving on Ray: {status['url']} ({status['replicas']} replica(s) running; "
            f"remove with: layerflow cloud unserve --address {ray_address})"
        )
        return
    if replicas != 1 or min_replicas is not None or max_replicas is not None:
        raise InvalidValueError(
            "--replicas, --min-replicas and --max-replicas need --ray ADDRESS, the Ray cluster "
            "to deploy the replicas on (e.g. --ray http://head:8265)."
        )
    run_server(
        model_dir,
        host=host,
        port=port,
        token=token,
        max_batch_size=max_batch_size,
        batch_delay_ms=batch_delay_ms,
        intra_op_threads=intra_op_threads,
        inter_op_threads=inter_op_threads,
        access_log=access_log,
        workers=workers,
        grpc_port=grpc_port,
    )


@app.command()
def predict(
    target: str = typer.Argument(..., help="A bundle folder, a model base directory or a server URL."),
    input_file: Path = typer.Option(
        ..., "--input", help='JSON file: {"inputs": ...} or {"instances": ...} or an array.'
    ),
    name: str | None = typer.Option(None, "--name", help="Model name (needed with several models or a URL)."),
    version: str | None = typer.Option(None, "--version", help="Version number or label (default: the latest)."),
    token: str | None = typer.Option(None, "--token", help="Bearer token of the server."),
) -> None:
    """Predict with an exported model, local or served; prints its outputs by name as JSON."""
    from layerflow.deploy import predict as run_predict

    chosen = int(version) if version is not None and version.isdigit() else version

    data = read_json_file(input_file, "the inputs")
    if isinstance(data, dict) and ("inputs" in data or "instances" in data):
        data = data.get("inputs", data.get("instances"))
    outputs = run_predict(target, data, name=name, version=chosen, token=token)
    print(json.dumps({output: values.tolist() for output, values in outputs.items()}))
