"""`layerflow ui` with 10,000 runs in the store, against MLflow's UI on the same runs, in one run.

    flock /tmp/layerflow-bench.lock .venv/bin/python bench/ui_load.py [--runs 10000] [--mlflow PATH/TO/mlflow] [--mlflow-repeat N]

Makes the runs as bench/ls_runs_10k.py does (plus a source snapshot for the 10 runs that are
compared, and one run in progress), serves them with `python -m layerflow.ui` on a loopback
port, and times what the issue's targets name:

- runs page, time to first byte (p95), and sorted / filtered pages (p95);
- the runs page ready in headless Chromium (load event with the table drawn, p95);
- an epoch appended to a live run's metrics.jsonl until its chart shows it (p95);
- comparing 10 runs with source diffs (p95);
- the server's peak memory (VmHWM).

MLflow (``--mlflow``: its ``mlflow`` command, installed in a separate virtualenv because it pins
its own versions) gets the same 10,000 runs (flags as params, 10 epochs of metrics, the
evaluation as metrics) in a SQLite store: 200 through its tracking API, the rest copied from
those in SQL (its API writes ~10 runs/s here, 20 minutes for 10,000), and its own server is
timed on what its runs page asks for: the first page of runs, sorted by a metric, filtered,
the page ready in Chromium, and the server's memory. Writes bench/results/ui_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from ls_runs_10k import make_runs

import layerflow as lf
from layerflow.runs import files
from layerflow.runs.ids import new_run_folder

RESULTS = Path(__file__).parent / "results" / "ui_load.json"
TARGETS = {
    "runs_page_first_byte_p95_s": 0.100,
    "sort_or_filter_p95_s": 0.150,
    "page_ready_chromium_p95_s": 1.0,
    "live_epoch_to_chart_p95_s": 1.0,
    "compare_10_runs_p95_s": 0.200,
    "server_peak_rss_mb": 150,
}
SORTED = "/?order=eval_accuracy&desc=1"
FILTERED = "/?filter=flag_dropout+%3D%3D+0.4+and+eval_accuracy+%3E+0.85"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]


def first_byte(client: httpx.Client, path: str) -> float:
    start = time.perf_counter()
    with client.stream("GET", path) as response:
        chunks = response.iter_raw()
        next(chunks, None)
        elapsed = time.perf_counter() - start
        for _ in chunks:
            pass
    assert response.status_code == 200, (path, response.status_code)
    return elapsed


def timed_get(client: httpx.Client, path: str, method: str = "GET", **kwargs) -> float:
    start = time.perf_counter()
    response = client.request(method, path, **kwargs)
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return elapsed


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """Memory of a process and its children (uvicorn/gunicorn workers), in MB."""
    total = 0.0
    pids = [pid] + [
        int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    ]
    for one in pids:
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                total += int(line.split()[1]) / 1024
    return total


def wait_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered at {url}")


def add_sources(runs_dir: Path, run_ids: list[str]) -> None:
    """A source snapshot (3 files, one changing per run) for the runs the comparison opens."""
    for i, run_id in enumerate(run_ids):
        source = runs_dir / run_id / "source"
        source.mkdir(parents=True, exist_ok=True)
        lines = [f"x_{n} = {n} * scale  # line {n}" for n in range(300)]
        lines[100 + i] = f"x_{100 + i} = {i} * scale  # changed in run {i}"
        (source / "train.py").write_text("import layerflow as lf\nscale = 2\n" + "\n".join(lines) + "\n")
        (source / "model.py").write_text(f"UNITS = {64 * (1 + i % 3)}\n" + "def build():\n    return UNITS\n")
        (source / "README.md").write_text("same in every run\n" * 50)


def live_run(runs_dir: Path) -> Path:
    run_id, folder, start = new_run_folder(runs_dir)
    files.write_json(
        folder / "run.json",
        {
            "id": run_id,
            "script": "train.py",
            "start": start.isoformat(),
            "status": "running",
            "driver_pid": os.getpid(),
            "host": socket.gethostname(),
        },
    )
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 1.0, "val_loss": 1.1}) + "\n")
    return folder


def chromium_page_ready(url: str, rows_selector: str, repeat: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        for _ in range(repeat + 1):
            context = browser.new_context()
            page = context.new_page()
            start = time.perf_counter()
            page.goto(url, wait_until="load")
            page.wait_for_selector(rows_selector, timeout=120_000)
            times.append(time.perf_counter() - start)
            context.close()
        browser.close()
    return times[1:]  # the first load warms the browser


def chromium_live(base: str, folder: Path, epochs: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    latencies = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{base}/runs/{folder.name}")
        page.wait_for_function("document.getElementById('charts').dataset.epochs === '1'")
        time.sleep(1.0)  # the event stream is open
        for epoch in range(2, epochs + 2):
            with open(folder / "metrics.jsonl", "a") as stream:
                stream.write(json.dumps({"epoch": epoch, "loss": 1 / epoch, "val_loss": 1.1 / epoch}) + "\n")
            start = time.perf_counter()
            page.wait_for_function(
                f"document.getElementById('charts').dataset.epochs === '{epoch}'", polling="raf", timeout=30_000
            )
            latencies.append(time.perf_counter() - start)
            time.sleep(0.3)
        browser.close()
    return latencies


def bench_layerflow(runs_dir: Path, compared: list[str], live: Path, repeat: int) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "layerflow.ui", "--runs-dir", str(runs_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_up(base + "/health")
        with httpx.Client(base_url=base, timeout=120) as client:
            cold = first_byte(client, "/")
            first = [first_byte(client, "/") for _ in range(repeat)]
            page_2 = [timed_get(client, "/?page=2") for _ in range(repeat)]
            ordered = [timed_get(client, SORTED) for _ in range(repeat)]
            filtered = [timed_get(client, FILTERED) for _ in range(repeat)]
            compare_path = "/compare?" + "&".join(f"runs={r}" for r in compared)
            assert "source-diff" in client.get(compare_path).text
            compare = [timed_get(client, compare_path) for _ in range(repeat)]
        ready = chromium_page_ready(base + "/", "#runs-table tbody tr", max(3, repeat // 5))
        live_latency = chromium_live(base, live, 20)
        peak = memory_mb(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    return {
        "runs_page_cold_s": cold,
        "runs_page_first_byte_p95_s": p95(first),
        "runs_page_2_p95_s": p95(page_2),
        "sorted_p95_s": p95(ordered),
        "filtered_p95_s": p95(filtered),
        "sort_or_filter_p95_s": max(p95(ordered), p95(filtered)),
        "page_ready_chromium_p95_s": p95(ready),
        "live_epoch_to_chart_p95_s": p95(live_latency),
        "compare_10_runs_p95_s": p95(compare),
        "server_peak_rss_mb": peak,
    }


MLFLOW_LOADER = r"""
import sqlite3, sys, time
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric, Param
uri, path, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
client = MlflowClient(tracking_uri=uri)
experiment = client.create_experiment("bench")
now = int(time.time() * 1000)
for i in range(min(seed, count)):
    run = client.create_run(experiment, run_name=f"run-{i}")
    params = [Param("dropout", str(0.1 + (i % 5) / 10)), Param("units", str(64 * (1 + i % 4))), Param("optimizer", "adam")]
    metrics = [Metric(k, v, now, e) for e in range(1, 11) for k, v in
               (("loss", 1 / e), ("accuracy", 1 - 1 / (e + 1)), ("val_loss", 1.1 / e), ("val_accuracy", 1 - 1.1 / (e + 2)))]
    metrics += [Metric("eval_loss", 0.3 + i % 7 / 100, now, 0), Metric("eval_accuracy", 0.8 + i % 9 / 100, now, 0)]
    client.log_batch(run.info.run_id, metrics=metrics, params=params)
    client.set_terminated(run.info.run_id)
# The rest are copies of those runs made in SQL (MLflow's API writes ~10 runs/s here).
copies = -(-count // seed) - 1
db = sqlite3.connect(path)
db.execute("CREATE TEMP TABLE copy AS WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < ?) "
           "SELECT run_uuid AS old, lower(hex(randomblob(16))) AS new, n FROM runs, k", (copies,))
db.execute("DELETE FROM copy WHERE rowid IN (SELECT rowid FROM copy ORDER BY n DESC, old LIMIT max(0, (SELECT count(*) FROM copy) - ?))",
           (count - seed,))
db.execute("INSERT INTO runs SELECT c.new, r.name || '-' || c.n, source_type, source_name, entry_point_name, user_id, status, "
           "start_time + c.n, end_time + c.n, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time "
           "FROM runs r JOIN copy c ON r.run_uuid = c.old")
for table, columns in (("params", '"key", value'), ("tags", '"key", value'),
                       ("metrics", '"key", value, timestamp, step, is_nan'),
                       ("latest_metrics", '"key", value, timestamp, step, is_nan')):
    db.execute(f"INSERT INTO {table} ({columns}, run_uuid) SELECT {columns}, c.new FROM {table} t JOIN copy c ON t.run_uuid = c.old")
db.commit()
print(db.execute("SELECT count(*) FROM runs").fetchone()[0])
print(experiment)
"""


def bench_mlflow(mlflow: str, count: int, repeat: int, workdir: Path) -> dict:
    python = str(Path(mlflow).parent / "python")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    start = time.perf_counter()
    loaded = subprocess.run(
        [python, "-c", MLFLOW_LOADER, uri, str(workdir / "mlflow.db"), str(count), "200"],
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    if loaded.returncode != 0:
        raise RuntimeError(loaded.stderr[-2000:])
    made, experiment = loaded.stdout.strip().splitlines()[-2:]
    assert int(made) == count, made
    load_s = time.perf_counter() - start
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            mlflow,
            "server",
            "--backend-store-uri",
            uri,
            "--default-artifact-root",
            str(workdir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
        start_new_session=True,
    )
    search = "/ajax-api/2.0/mlflow/runs/search"

    def body(**extra):
        return {"experiment_ids": [experiment], "max_results": 100, "run_view_type": "ACTIVE_ONLY", **extra}

    try:
        wait_up(base + "/health")
        with httpx.Client(base_url=base, timeout=300) as client:
            first_byte(client, "/")
            cold = timed_get(client, search, "POST", json=body(order_by=["attributes.start_time DESC"]))
            first = [
                timed_get(client, search, "POST", json=body(order_by=["attributes.start_time DESC"]))
                for _ in range(repeat)
            ]
            ordered = [
                timed_get(client, search, "POST", json=body(order_by=["metrics.eval_accuracy DESC"]))
                for _ in range(repeat)
            ]
            filtered = [
                timed_get(
                    client, search, "POST", json=body(filter="params.dropout = '0.4' and metrics.eval_accuracy > 0.85")
                )
                for _ in range(repeat)
            ]
        ready = chromium_page_ready(f"{base}/#/experiments/{experiment}/runs", "text=/run-\\d+/", max(3, repeat // 5))
        peak = memory_mb(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return {
        "load_runs_s": load_s,
        "runs_search_cold_s": cold,
        "runs_page_first_byte_p95_s": p95(first),
        "sorted_p95_s": p95(ordered),
        "filtered_p95_s": p95(filtered),
        "sort_or_filter_p95_s": max(p95(ordered), p95(filtered)),
        "page_ready_chromium_p95_s": p95(ready),
        "server_peak_rss_mb": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--mlflow", help="the mlflow command of a virtualenv holding MLflow (omit to skip it)")
    parser.add_argument(
        "--mlflow-repeat",
        type=int,
        help="timed requests per MLflow measure (default --repeat; its sorted search takes ~17 s each here)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        start = time.perf_counter()
        make_runs(runs_dir, args.runs)
        compared = sorted(p.name for p in runs_dir.iterdir() if p.is_dir())[:10]
        add_sources(runs_dir, compared)
        lf.ls_runs(runs_dir)  # the index, as after any `layerflow runs`
        live = live_run(runs_dir)
        print(f"made {args.runs} runs and their index in {time.perf_counter() - start:.1f} s")
        result = {
            "runs": args.runs,
            "layerflow": bench_layerflow(runs_dir, compared, live, args.repeat),
            "targets": TARGETS,
        }
        if args.mlflow:
            try:
                result["mlflow"] = bench_mlflow(args.mlflow, args.runs, args.mlflow_repeat or args.repeat, Path(tmp))
            except Exception as error:  # noqa: BLE001 - the peer failing is reported, not fatal
                result["mlflow_error"] = f"{type(error).__name__}: {error}"[:2000]
    ours, peer = result["layerflow"], result.get("mlflow", {})
    print(f"\n{args.runs} runs {'':28} {'layerflow':>10} {'MLflow':>10} {'ratio':>7} {'target':>8}")
    for key, label in (
        ("runs_page_first_byte_p95_s", "runs page, first byte p95 (s)"),
        ("sorted_p95_s", "sorted by a metric p95 (s)"),
        ("filtered_p95_s", "filtered p95 (s)"),
        ("page_ready_chromium_p95_s", "page ready in Chromium p95 (s)"),
        ("live_epoch_to_chart_p95_s", "live epoch -> chart p95 (s)"),
        ("compare_10_runs_p95_s", "compare 10 runs p95 (s)"),
        ("server_peak_rss_mb", "server peak memory (MB)"),
    ):
        theirs = peer.get(key)
        ratio = f"{theirs / ours[key]:7.1f}" if theirs else f"{'-':>7}"
        target = TARGETS.get(key, TARGETS["sort_or_filter_p95_s"])
        shown = f"{theirs:10.3f}" if theirs is not None else f"{'-':>10}"
        print(f"{label:39} {ours[key]:10.3f} {shown} {ratio} {target:8}")
    if "mlflow_error" in result:
        print("MLflow:", result["mlflow_error"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
