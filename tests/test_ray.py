"""Runs and trials on a real Ray cluster started on loopback: cloud train/jobs/logs/collect/cancel, tune --address."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from layerflow.runs.store import RunStore
from tests.conftest import layerflow_cli

pytest.importorskip("ray.job_submission")

VENV_BIN = str(Path(sys.executable).parent)

TRAIN = """
    import time
    import layerflow as lf

    FLAGS = lf.flags(dropout=0.2, epochs=3, sleep=0.0)
    print("starting", FLAGS.dropout, flush=True)
    for epoch in range(1, FLAGS.epochs + 1):
        time.sleep(FLAGS.sleep)
        lf.log_metrics(epoch, val_accuracy=1 - FLAGS.dropout + epoch / 100)
        print("epoch", epoch, flush=True)
    lf.write_run_data("weights.bin", b"\\x00\\x01model")
    print("finished", flush=True)
"""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class LocalRayHead:
    """A Ray head on loopback with ports picked here, stopped by killing only its own processes."""

    def __init__(self):
        self.temp_dir = tempfile.mkdtemp(prefix="lfray-", dir="/tmp")  # short: Ray's socket paths are capped
        gcs, dashboard, agent_http, agent_grpc, metrics, runtime_env, node_manager, object_manager, client = (
            _free_ports(9)
        )
        self.address = f"http://127.0.0.1:{dashboard}"
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "RAY_USAGE_STATS_ENABLED": "0",
            # One try at a runtime env that fails (Ray's default is 3), to keep the test short.
            "RUNTIME_ENV_RETRY_TIMES": "1",
        }
        command = [
            f"{VENV_BIN}/ray",
            "start",
            "--head",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(gcs),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dashboard),
            "--dashboard-agent-listen-port",
            str(agent_http),
            "--dashboard-agent-grpc-port",
            str(agent_grpc),
            "--metrics-export-port",
            str(metrics),
            "--runtime-env-agent-port",
            str(runtime_env),
            "--node-manager-port",
            str(node_manager),
            "--object-manager-port",
            str(object_manager),
            "--ray-client-server-port",
            str(client),
            "--min-worker-port",
            "23000",
            "--max-worker-port",
            "23999",
            "--num-cpus",
            "2",
            "--object-store-memory",
            "200000000",
            "--temp-dir",
            self.temp_dir,
            "--disable-usage-stats",
        ]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=180)
        if result.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed:\n{result.stdout}\n{result.stderr}")

    def processes(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if self.temp_dir.encode() in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    pass
        return pids

    def stop(self) -> None:
        for pid in self.processes():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head():
    head = LocalRayHead()
    yield head
    head.stop()


@pytest.fixture
def project(write_script):
    return write_script(TRAIN)


def cli(*args, runs_dir: Path, cwd: Path, timeout: int = 240):
    return layerflow_cli(*args, cwd=cwd, env={"LAYERFLOW_RUNS_DIR": str(runs_dir)}, timeout=timeout)


@pytest.mark.slow
def test_cloud_train_streams_the_output_and_files_the_run_here(ray_head, project, runs_dir, tmp_path):
    result = cli(
        "cloud",
        "train",
        str(project),
        "--flag",
        "dropout=0.3",
        "--address",
        ray_head.address,
        runs_dir=runs_dir,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting 0.3" in result.stdout and "finished" in result.stdout
    assert "@@layerflow" not in result.stdout
    record = RunStore(runs_dir).record("latest")
    assert record["status"] == "completed" and record["flags"]["dropout"] == 0.3
    assert record["epochs_completed"] == 3 and record["metrics"]["val_accuracy"] == pytest.approx(0.73)
    run_dir = Path(record["path"])
    assert (run_dir / "data" / "weights.bin").read_bytes() == b"\x00\x01model"
    assert "epoch 3" in (run_dir / "output.log").read_text()
    assert (run_dir / "source" / "train.py").is_file()
    job_id = record["remote"]["job_id"]
    assert record["remote"]["address"] == ray_head.address and job_id.startswith("raysubmit_")

    jobs = cli("cloud", "jobs", "--address", ray_head.address, runs_dir=runs_dir, cwd=tmp_path)
    assert job_id in jobs.stdout and record["id"] in jobs.stdout and "SUCCEEDED" in jobs.stdout
    logs = cli("cloud", "logs", record["id"], runs_dir=runs_dir, cwd=tmp_path)  # by run id: address from the run
    assert logs.returncode == 0 and "epoch 2" in logs.stdout and "@@layerflow" not in logs.stdout
    for command, message in (
        ("logs", "No logs for job 'raysubmit_nosuchjob'"),
        ("cancel", "Cannot stop job 'raysubmit_nosuchjob'"),
        ("collect", "No job 'raysubmit_nosuchjob'"),
    ):
        unknown = cli(
            "cloud", command, "raysubmit_nosuchjob", "--address", ray_head.address, runs_dir=runs_dir, cwd=tmp_path
        )
        assert unknown.returncode == 2 and message in unknown.stderr, (command, unknown.stderr)


@pytest.mark.slow
def test_detached_job_can_be_cancelled_and_collected(ray_head, project, runs_dir, tmp_path):
    result = cli(
        "cloud",
        "train",
        str(project),
        "--flag",
        "epochs=100",
        "--flag",
        "sleep=0.5",
        "--detach",
        "--address",
        ray_head.address,
        runs_dir=runs_dir,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip().splitlines()[-1]
    record = RunStore(runs_dir).record("latest")
    assert record["status"] == "running" and record["remote"]["job_id"] == job_id

    early = cli("cloud", "collect", job_id, "--address", ray_head.address, runs_dir=runs_dir, cwd=tmp_path)
    assert early.returncode == 2 and "still" in early.stderr
    deadline = time.monotonic() + 90
    while (
        "epoch 2"
        not in cli("cloud", "logs", job_id, "--address", ray_head.address, runs_dir=runs_dir, cwd=tmp_path).stdout
    ):
        assert time.monotonic() < deadline, "the job never printed its second epoch"
        time.sleep(1)
    assert cli("cloud", "cancel", "latest", runs_dir=runs_dir, cwd=tmp_path).returncode == 0
    deadline = time.monotonic() + 60
    while True:
        collected = cli("cloud", "collect", "latest", runs_dir=runs_dir, cwd=tmp_path)
        if collected.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert collected.returncode == 0, collected.stderr
    record = RunStore(runs_dir).record("latest")
    assert record["status"] == "interrupted", record
    assert "epoch 2" in (Path(record["path"]) / "output.log").read_text()
    assert 2 <= record["epochs_completed"] < 100


@pytest.mark.slow
def test_tune_on_ray_stops_poor_trials_early(ray_head, project, runs_dir, tmp_path):
    result = cli(
        "tune",
        str(project),
        "--grid",
        "dropout=0.1,0.7",
        "--flag",
        "epochs=30",
        "--flag",
        "sleep=0.4",
        "--metric",
        "val_accuracy",
        "--early-stop",
        "--address",
        ray_head.address,
        runs_dir=runs_dir,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    records = {r["flags"]["dropout"]: r for r in RunStore(runs_dir).records()}
    assert records[0.1]["status"] == "completed" and records[0.1]["epochs_completed"] == 30
    assert records[0.7]["status"] == "stopped" and records[0.7]["epochs_completed"] < 30
    assert "stopped early by ASHA" in records[0.7]["error"]
    assert records[0.1]["properties"]["tuning_id"] == records[0.7]["properties"]["tuning_id"]
    assert all(r["remote"]["job_id"] for r in records.values())


@pytest.mark.slow
def test_requirements_that_fail_to_install_fail_the_run_with_the_reason(ray_head, project, runs_dir, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned on purpose to a release that does not exist\nlayerflow-no-such-package==0.0.1\n")
    result = cli(
        "cloud",
        "train",
        str(project),
        "--requirements",
        str(requirements),
        "--address",
        ray_head.address,
        runs_dir=runs_dir,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    record = RunStore(runs_dir).record("latest")
    assert record["status"] == "failed"
    assert "runtime" in record["error"].lower() or "layerflow-no-such-package" in record["error"], record["error"]


def test_bad_addresses_fail_within_seconds_and_write_nothing(project, runs_dir, tmp_path):
    for address, message in [
        ("http://127.0.0.1:9", "Cannot reach a Ray cluster"),
        ("ray://127.0.0.1:10001", "Ray client address"),
    ]:
        started = time.monotonic()
        result = cli("cloud", "train", str(project), "--address", address, runs_dir=runs_dir, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert time.monotonic() - started < 20
    result = cli("cloud", "train", str(project), runs_dir=runs_dir, cwd=tmp_path)
    assert result.returncode == 2 and "No Ray cluster given" in result.stderr
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


@pytest.mark.slow
def test_tune_with_address_local_starts_and_stops_a_ray_cluster(project, runs_dir, tmp_path):
    result = cli(
        "tune",
        str(project),
        "--grid",
        "dropout=0.2,0.4",
        "--parallel",
        "2",
        "--address",
        "local",
        runs_dir=runs_dir,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    records = RunStore(runs_dir).records()
    assert sorted(r["status"] for r in records) == ["completed", "completed"]
    assert all(r["remote"]["address"].startswith("http://127.0.0.1") for r in records)


@pytest.mark.slow
def test_ctrl_c_during_tune_on_ray_stops_the_jobs_and_files_them_interrupted(ray_head, project, runs_dir, tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layerflow.cli",
            "tune",
            str(project),
            "--grid",
            "dropout=0.2,0.3",
            "--flag",
            "epochs=200",
            "--flag",
            "sleep=0.5",
            "--parallel",
            "2",
            "--address",
            ray_head.address,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "LAYERFLOW_RUNS_DIR": str(runs_dir)},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # both trials running on the cluster, with epochs streamed back
        logs = list(runs_dir.glob("*/output.log")) if runs_dir.exists() else []
        if len(logs) == 2 and all("epoch 2" in log.read_text() for log in logs):
            break
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    output, _ = process.communicate(timeout=90)
    assert process.returncode == 130, output
    records = RunStore(runs_dir).records()
    assert [r["status"] for r in records] == ["interrupted", "interrupted"], output
    for record in records:
        assert "epoch 2" in (runs_dir / record["id"] / "output.log").read_text()
        assert 2 <= record["epochs_completed"] < 200


@pytest.mark.slow
def test_a_cluster_dying_mid_job_fails_the_run_and_keeps_its_log(ray_head, project, runs_dir, tmp_path):
    """Runs last: it kills the module's cluster."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layerflow.cli",
            "cloud",
            "train",
            str(project),
            "--flag",
            "epochs=200",
            "--flag",
            "sleep=0.5",
            "--address",
            ray_head.address,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LAYERFLOW_RUNS_DIR": str(runs_dir)},
    )
    deadline = time.monotonic() + 90
    output = ""
    for line in process.stdout:
        output += line
        if "epoch 2" in line or time.monotonic() > deadline:
            break
    ray_head.stop()
    output += process.communicate(timeout=60)[0]
    assert process.returncode == 1, output
    record = RunStore(runs_dir).record("latest")
    assert record["status"] == "failed" and "lost contact with the Ray cluster" in record["error"], record
    log = (Path(record["path"]) / "output.log").read_text()
    assert "starting 0.2" in log and "epoch 2" in log
