"""Serving under load on loopback, side by side in one run (wrk, 32 connections).

For the Fashion-MNIST MLP and CNN, and a raw-feature model (a feature spec with a vocabulary,
bucketized, crossed and hashed columns inside the ONNX graph, rows of raw values such as
{"age": 41, "city": "lima", ...} in, tf.estimator's prediction keys out), single-row and
32-row requests:
  layerflow serve, batching off and on, and with --workers 2 (two processes on one port);
  KServe v2 gRPC ModelInfer (raw_input_contents, 32 calls in flight from a grpc.aio client);
  a bare Starlette endpoint doing the same JSON work (orjson, one array, onnxruntime, orjson;
  none of layerflow's checks, routing or metrics), for the first tensor model;
  the same server stack answering an empty endpoint (the HTTP limit of this machine);
  MLflow's model server on the same ONNX model (when an MLflow environment is given);
and onnxruntime called in-process (the inference limit). Reports req/s and p50/p99.

    .venv/bin/python bench/serve_load.py [--seconds 10] [--mlflow-python /path/to/venv/bin/python]
        [--models mlp,cnn,raw] [--servers layerflow,batching,one-thread,workers2,grpc,empty,bare]

Writes bench/results/serve_load.json (bench/results/serve_load_<models>.json for a subset).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "serve_load.json"
CONNECTIONS = 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(command: list[str], log: Path, **kwargs) -> subprocess.Popen:
    """Starts a server with its output in a file: a pipe nobody reads fills up and stalls a
    server that logs every request (MLflow's does), which would measure the pipe, not the server."""
    with open(log, "wb") as stream:
        return subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, **kwargs)


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def wrk(url: str, body: str, seconds: int, work: Path) -> dict:
    script = work / "post.lua"
    (work / "body.json").write_text(body)
    script.write_text(
        textwrap.dedent(f"""
        wrk.method = "POST"
        wrk.headers["Content-Type"] = "application/json"
        local f = io.open("{work / "body.json"}", "r"); wrk.body = f:read("*a"); f:close()
    """)
    )
    done = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
    )
    text = done.stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", text, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    timeouts = re.search(r"timeout (\d+)", text)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "timeouts": int(timeouts.group(1)) if timeouts else 0,
    }


def report(result: dict) -> None:
    print(
        f"{result['server']:20} {result['model']} rows={result['rows']:2}  {result['requests_per_s']:9,.0f} req/s  "
        f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  non-2xx {result['non_2xx']}  "
        f"timeouts {result['timeouts']}",
        flush=True,
    )


def build_models(base: Path) -> dict:
    import layerflow as lf
    from layerflow import keras

    keras.utils.set_random_seed(0)
    mlp = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    cnn = keras.Sequential(
        [
            keras.Input((1, 28, 28)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", data_format="channels_first"),
            keras.layers.MaxPooling2D(2, data_format="channels_first"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu", data_format="channels_first"),
            keras.layers.MaxPooling2D(2, data_format="channels_first"),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    return {
        "mlp": (lf.export_model(mlp, base, name="mlp"), (784,)),
        "cnn": (lf.export_model(cnn, base, name="cnn"), (1, 28, 28)),
        "raw": (build_raw_model(base), None),
    }


CITIES = ["lima", "oslo", "paris", "quito", "zürich", "accra", "delhi", "tokyo"]


def raw_rows(n: int, seed: int) -> list[dict]:
    """Rows of raw values, one unseen city and one missing income among them."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            "age": int(rng.integers(18, 80)),
            "city": str(rng.choice(CITIES)),
            "income": round(float(rng.normal(50_000, 15_000)), 2),
            "floor": int(rng.integers(0, 30)),
        }
        for _ in range(n)
    ]
    rows[-1]["city"] = "atlantis"
    rows[0]["income"] = None
    return rows


def build_raw_model(base: Path) -> Path:
    """A wide & deep Keras classifier over a feature spec (vocabulary, bucketized, crossed, hashed)."""
    import pandas as pd

    import layerflow as lf
    from layerflow import keras

    frame = pd.DataFrame(raw_rows(2000, 0))
    frame["y"] = (frame["age"] > 45).astype(int) + (frame["city"] == "oslo")
    spec = (
        lf.feature_spec(frame, label="y")
        .numeric("age", "income", normalizer="standard")
        .categorical_vocab("city")
        .indicator("city")
        .bucketized("age", [30, 45, 60])
        .crossed(["city", "age_bucketized"], hash_bucket_size=64)
        .indicator("city_X_age_bucketized")
        .categorical_hash("floor", hash_bucket_size=16)
        .embedding("floor", dimension=4)
        .fit()
    )
    keras.utils.set_random_seed(0)
    inputs, dense = spec.keras_inputs()
    hidden = keras.layers.Dense(64, activation="relu")(keras.layers.Dense(128, activation="relu")(dense))
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    return lf.export_model(
        model,
        base,
        name="raw",
        feature_spec=spec,
        head="multiclass",
        model_outputs="logits",
        class_labels=["low", "mid", "high"],
    )


def request_body(shape: tuple | None, rows: int) -> str:
    if shape is None:
        return json.dumps({"instances": raw_rows(rows, 1)})
    return json.dumps({"instances": np.random.default_rng(1).random((rows, *shape)).round(4).tolist()})


EMPTY_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def empty(request):
    return JSONResponse({"predictions": []})
app = Starlette(routes=[Route("/v1/models/{rest:path}", empty, methods=["GET", "POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""

# The peer for layerflow's per-request overhead: a bare Starlette endpoint doing the same JSON work
# (orjson in, one float32 array, onnxruntime on the event loop, orjson out) with none of the checks,
# routing, metrics or protocols. Serves one Keras-tensor bundle (argv[2]), TF Serving's 'instances'.
BARE_APP = """
import sys, numpy as np, onnxruntime as ort, orjson, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
session = ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
async def predict(request):
    if request.method == "GET":  # the readiness probe
        return Response(b"{}", media_type="application/json")
    x = np.asarray(orjson.loads(await request.body())["instances"], dtype=np.float32)
    (y,) = session.run(None, {name: x})
    return Response(orjson.dumps({"predictions": y}, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
app = Starlette(routes=[Route("/v1/models/{rest:path}", predict, methods=["GET", "POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""

MLFLOW_SAVE = """
import sys, onnx, mlflow.onnx
mlflow.onnx.save_model(onnx.load(sys.argv[1]), sys.argv[2])
"""


def grpc_load(port: int, model: str, input_name: str, x: np.ndarray, seconds: float) -> dict:
    """KServe v2 gRPC ModelInfer with raw_input_contents, CONNECTIONS calls in flight (a grpc.aio client
    in this process: Python, where wrk is C, so it takes a share of the same 2 cores)."""
    import asyncio

    import grpc

    from layerflow.deploy.grpc_service import MESSAGES

    request = MESSAGES["ModelInferRequest"](model_name=model)
    request.inputs.add(name=input_name, datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    payload = request.SerializeToString()
    latencies: list[float] = []

    async def run() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")  # bytes in, bytes out
            await call(payload)
            stop = time.perf_counter() + seconds

            async def worker() -> None:
                while time.perf_counter() < stop:
                    start = time.perf_counter()
                    await call(payload)
                    latencies.append(time.perf_counter() - start)

            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))

    began = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "requests_per_s": len(ordered) / elapsed,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "non_2xx": 0,
        "timeouts": 0,
    }


def in_process(bundle: Path, shape: tuple, rows: int, seconds: float = 3.0) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(bundle / "model.onnx"), options, providers=["CPUExecutionProvider"])
    if shape is None:
        table = raw_rows(rows, 1)
        feed = {
            "age": np.array([r["age"] for r in table], np.float64),
            "income": np.array([np.nan if r["income"] is None else r["income"] for r in table], np.float64),
            "city": np.array([r["city"] for r in table], object),
            "floor": np.array([r["floor"] for r in table], np.int64),
        }
    else:
        feed = {session.get_inputs()[0].name: np.random.default_rng(0).random((rows, *shape)).astype(np.float32)}
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(None, feed)
        count += rows
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--mlflow-python", help="python of an environment with mlflow installed")
    parser.add_argument("--models", default="mlp,cnn,raw", help="which models to load (comma-separated)")
    parser.add_argument(
        "--servers", default="layerflow,one-thread,batching,workers2,grpc,empty,bare", help="which servers to run"
    )
    args = parser.parse_args()
    chosen_models = args.models.split(",")
    chosen_servers = args.servers.split(",")
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = {k: v for k, v in build_models(work / "models").items() if k in chosen_models}
        servers = {
            "layerflow": ["-m", "layerflow.cli", "serve", str(work / "models")],
            "layerflow, 1 onnxruntime thread": [
                "-m",
                "layerflow.cli",
                "serve",
                str(work / "models"),
                "--intra-op-threads",
                "1",
            ],
            "layerflow+batching": [
                "-m",
                "layerflow.cli",
                "serve",
                str(work / "models"),
                "--max-batch-size",
                "64",
                "--batch-delay-ms",
                "2",
            ],
            "layerflow --workers 2": ["-m", "layerflow.cli", "serve", str(work / "models"), "--workers", "2"],
            "empty endpoint": ["-c", EMPTY_APP],
            "bare endpoint": ["-c", BARE_APP],
        }
        keys = {
            "layerflow": "layerflow",
            "layerflow, 1 onnxruntime thread": "one-thread",
            "layerflow+batching": "batching",
            "layerflow --workers 2": "workers2",
            "empty endpoint": "empty",
            "bare endpoint": "bare",
        }
        servers = {label: command for label, command in servers.items() if keys[label] in chosen_servers}
        for label, command in servers.items():
            port = free_port()
            log = work / "server.log"
            if label == "bare endpoint":  # one bundle per process: run it for the first tensor model only
                first = next(m for m, (_, shape) in models.items() if shape is not None)
                command = [*command, str(port), str(models[first][0] / "model.onnx")]
            else:
                command = [*command, *(["--port", str(port)] if label != "empty endpoint" else [str(port)])]
            process = start_server([sys.executable, *command], log)
            try:
                wait_until_up(f"http://127.0.0.1:{port}/v1/models/{next(iter(models))}", process, log)
                for model, (_bundle, shape) in models.items():
                    if label == "bare endpoint" and model != first:
                        continue
                    for rows in (1, 32):
                        body = request_body(shape, rows)
                        url = f"http://127.0.0.1:{port}/v1/models/{model}:predict"
                        result = wrk(url, body, args.seconds, work)
                        result.update(server=label, model=model, rows=rows)
                        rows_out.append(result)
                        report(result)
            finally:
                process.terminate()
                process.wait(timeout=30)
        if "grpc" in chosen_servers:
            port, grpc_port = free_port(), free_port()
            log = work / "grpc.log"
            process = start_server(
                [
                    sys.executable,
                    "-m",
                    "layerflow.cli",
                    "serve",
                    str(work / "models"),
                    "--port",
                    str(port),
                    "--grpc-port",
                    str(grpc_port),
                ],
                log,
            )
            try:
                wait_until_up(f"http://127.0.0.1:{port}/v1/models/{next(iter(models))}", process, log)
                for model, (bundle, shape) in models.items():
                    if shape is None:
                        continue
                    name = json.loads((bundle / "signature.json").read_text())["inputs"][0]["name"]
                    for rows in (1, 32):
                        x = np.random.default_rng(1).random((rows, *shape)).round(4)
                        result = grpc_load(grpc_port, model, name, x, args.seconds)
                        result.update(server="layerflow gRPC", model=model, rows=rows)
                        rows_out.append(result)
                        report(result)
            finally:
                process.terminate()
                process.wait(timeout=30)
        if args.mlflow_python:
            for model, (bundle, shape) in models.items():
                if shape is None:
                    continue  # MLflow's ONNX flavour takes tensors, not rows of raw values
                target = work / f"mlflow-{model}"
                subprocess.run(
                    [args.mlflow_python, "-c", MLFLOW_SAVE, str(bundle / "model.onnx"), str(target)],
                    check=True,
                    capture_output=True,
                )
                port = free_port()
                mlflow_bin = str(Path(args.mlflow_python).parent / "mlflow")
                env = {**os.environ, "PATH": f"{Path(args.mlflow_python).parent}{os.pathsep}{os.environ['PATH']}"}
                log = work / "mlflow.log"
                process = start_server(
                    [
                        mlflow_bin,
                        "models",
                        "serve",
                        "-m",
                        str(target),
                        "-p",
                        str(port),
                        "--env-manager",
                        "local",
                        "-h",
                        "127.0.0.1",
                    ],
                    log,
                    env=env,
                )
                try:
                    wait_until_up(f"http://127.0.0.1:{port}/ping", process, log)
                    for rows in (1, 32):
                        x = np.random.default_rng(1).random((rows, *shape)).round(4)
                        body = json.dumps({"inputs": x.tolist()})
                        result = wrk(f"http://127.0.0.1:{port}/invocations", body, args.seconds, work)
                        result.update(server="mlflow", model=model, rows=rows)
                        rows_out.append(result)
                        report(result)
                finally:
                    process.terminate()
                    process.wait(timeout=30)
        inference = {
            f"{model}_rows{rows}": in_process(bundle, shape, rows)
            for model, (bundle, shape) in models.items()
            for rows in (1, 32)
        }
    print("\nonnxruntime in-process, 1 thread (predictions/s):", {k: round(v) for k, v in inference.items()})
    rate = {(r["server"], r["model"], r["rows"]): r["requests_per_s"] for r in rows_out}
    for model in models:
        for rows in (1, 32):
            ours = rate.get(("layerflow", model, rows))
            if ours is None:
                continue
            line = f"{model} rows={rows:2}: layerflow {ours:,.0f} req/s"
            if rate.get(("layerflow gRPC", model, rows)):
                line += (
                    f", gRPC raw_input_contents {rate[('layerflow gRPC', model, rows)] * rows:,.0f} rows/s vs REST "
                    f"{ours * rows:,.0f} rows/s = {rate[('layerflow gRPC', model, rows)] / ours:.2f}x"
                )
            if rate.get(("bare endpoint", model, rows)):
                line += (
                    f", layerflow/bare endpoint (same JSON work) = {ours / rate[('bare endpoint', model, rows)]:.2f}"
                )
            if rate.get(("layerflow --workers 2", model, rows)):
                line += f", --workers 2 / 1 worker = {rate[('layerflow --workers 2', model, rows)] / ours:.2f}"
            if rate.get(("empty endpoint", model, rows)):
                line += f", layerflow/empty endpoint = {ours / rate[('empty endpoint', model, rows)]:.2f}"
            if rate.get(("mlflow", model, rows)):
                line += f", layerflow/mlflow = {ours / rate[('mlflow', model, rows)]:.1f}x"
            if model == "raw" and rate.get(("layerflow", "mlp", rows)):
                line += f", raw-feature bundle / Keras MLP bundle = {ours / rate[('layerflow', 'mlp', rows)]:.2f}"
            print(line)
    results = (
        RESULTS
        if set(chosen_models) == {"mlp", "cnn", "raw"} and len(chosen_servers) == 7
        else RESULTS.with_name(f"serve_load_{'_'.join(chosen_models)}.json")
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(
        json.dumps(
            {
                "connections": CONNECTIONS,
                "seconds": args.seconds,
                "load": rows_out,
                "in_process_predictions_per_s": inference,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
