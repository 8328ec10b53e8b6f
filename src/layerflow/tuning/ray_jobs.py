"""Tracked runs as Ray jobs: submitted with the script's folder, followed, filed back here.

The transport of ``layerflow cloud train`` and of ``layerflow tune --address``. A run
submitted to Ray gets its local folder at once (status ``running``, with the cluster
address and job id under ``remote``); the job's output and metrics are appended to it
as they arrive, and when the job ends its whole run folder, sent back through the job
log, replaces it. This process is the only writer of the local runs dir.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from layerflow.errors import LayerflowError, MissingFileError
from layerflow.runs import files as f
from layerflow.runs.archive import unpack_run
from layerflow.runs.ids import new_run_folder
from layerflow.runs.index import INDEX_FILE
from layerflow.runs.record import read_record
from layerflow.runs.store import RunStore
from layerflow.tuning.job_log import JobLogDecoder
from layerflow.tuning.trial import EpochCallback, Trial

ADDRESS_ENV = "RAY_API_SERVER_ADDRESS"
_CONNECT_TIMEOUT_SECONDS = 5
_AGENT_WAIT_SECONDS = 60
_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
# Never uploaded with the script's folder (besides what its .gitignore names).
_EXCLUDES = [".git", ".venv", "venv", "__pycache__", "*.pyc", ".ipynb_checkpoints"]


class ClusterError(LayerflowError, RuntimeError):
    """A Ray cluster that cannot be reached or refuses a job."""


def _import_job_client():
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise ClusterError("Running on Ray needs Ray's job client: pip install 'layerflow[ray]'.") from None
    return JobSubmissionClient


def normalise_address(address: str | None) -> str:
    """``head:8265`` -> ``http://head:8265``; None -> ``$RAY_API_SERVER_ADDRESS``."""
    address = address or os.environ.get(ADDRESS_ENV)
    if not address:
        raise ClusterError("No Ray cluster given: pass --address http://HEAD:8265 (the cluster's job-submission "
                           f"address, as `ray job submit` takes it), --address local, or set {ADDRESS_ENV}.")
    address = address.strip().rstrip("/")
    if address.startswith("ray://"):
        raise ClusterError(f"{address} is a Ray client address; layerflow submits jobs, so give the dashboard's "
                           "job-submission address instead, e.g. http://head:8265.")
    return address if "://" in address else f"http://{address}"


def auth_token() -> str | None:
    """The Ray cluster token from ``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def check_reachable(address: str, timeout: float = _CONNECT_TIMEOUT_SECONDS) -> dict[str, str]:
    """Fails within ``timeout`` seconds, with what to check, when no job server answers at ``address``.

    Returns the headers the cluster needs: its bearer token when it has token authentication.
    """
    headers: dict[str, str] = {}
    token = auth_token()
    try:
        try:
            with urllib.request.urlopen(f"{address}/api/version", timeout=timeout) as response:
                body = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            if error.code != 401 or token is None:
                raise
            headers = {"Authorization": f"Bearer {token}"}
            request = urllib.request.Request(f"{address}/api/version", headers=headers)
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise ClusterError(f"The Ray cluster at {address} requires an authentication token"
                               + (" and refused this one" if token else "") + "; set RAY_AUTH_TOKEN (or "
                               "RAY_AUTH_TOKEN_PATH) to the cluster's token, as `ray get-auth-token` prints it.") from None
        raise ClusterError(f"{address} answered {error.code} {error.reason}; expected a Ray cluster's "
                           "job-submission (dashboard) address, e.g. http://head:8265.") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ClusterError(
            f"Cannot reach a Ray cluster at {address} ({reason}). Expected the job-submission (dashboard) address "
            "of a running cluster, e.g. http://head:8265; start one with `ray start --head` or use --address local."
        ) from None
    if "ray_version" not in body:
        raise ClusterError(f"{address} answered, but not as a Ray job server (no ray_version in /api/version).")
    return headers


def quiet_ray_logging() -> None:
    """Keeps Ray's own INFO logging (job client, dashboard SDK) off the user's console."""
    import logging

    for name in ("ray", "ray.dashboard", "ray.dashboard.modules.job.sdk", "ray.dashboard.modules.dashboard_sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)


class RayCluster:
    """A connection to a Ray cluster's job server; ``RayCluster.connect("local")`` starts one here."""

    def __init__(self, address: str, headers: dict[str, str] | None = None, started_here: bool = False,
                 python: str = "python"):
        self.address = address
        self.started_here = started_here
        self.python = python
        self.client = _import_job_client()(address, headers=headers or None)

    @classmethod
    def connect(cls, address: str | None) -> "RayCluster":
        quiet_ray_logging()
        if address == "local":
            return cls._start_local()
        address = normalise_address(address)
        return cls(address, check_reachable(address))

    @classmethod
    def _start_local(cls) -> "RayCluster":
        _import_job_client()
        import ray

        context = ray.init(address="local", include_dashboard=True, dashboard_host="127.0.0.1", num_cpus=os.cpu_count(),
                           configure_logging=False, log_to_driver=False)
        address = f"http://{context.dashboard_url}"
        deadline = time.monotonic() + 60
        while True:
            try:
                headers = check_reachable(address, timeout=2)
                break
            except ClusterError:
                if time.monotonic() > deadline:
                    ray.shutdown()
                    raise
                time.sleep(0.5)
        # The cluster runs from this Python, so jobs use it too (whatever PATH says).
        return cls(address, headers, started_here=True, python=sys.executable)

    def close(self) -> None:
        if self.started_here:
            import ray

            ray.shutdown()

    def submit(self, script: Path, run_id: str, flags: Mapping[str, Any], properties: Mapping[str, Any],
               args: Sequence[str] = (), command_line_flags: Mapping[str, str] | None = None,
               cpus: float = 1, gpus: float = 0, requirements: Sequence[str] | None = None,
               exclude: Sequence[str] = (), env_vars: Mapping[str, str] | None = None) -> str:
        """Submits one tracked run of ``script`` (its folder is the job's working dir); returns the job id."""
        payload = {"script": script.name, "run_id": run_id, "flags": dict(flags), "properties": dict(properties),
                   "args": list(args), "command_line_flags": dict(command_line_flags or {})}
        runtime_env: dict[str, Any] = {"working_dir": str(script.parent), "excludes": [*_EXCLUDES, *exclude]}
        if requirements:
            runtime_env["pip"] = list(requirements)
        if env_vars:
            runtime_env["env_vars"] = dict(env_vars)
        entrypoint = f"{self.python} -m layerflow.tuning.remote_entry {shlex.quote(json.dumps(payload))}"
        deadline = time.monotonic() + _AGENT_WAIT_SECONDS
        while True:
            try:
                return self.client.submit_job(
                    entrypoint=entrypoint, runtime_env=runtime_env, entrypoint_num_cpus=cpus,
                    entrypoint_num_gpus=gpus or None, metadata={"layerflow_run_id": run_id, "script": script.name},
                )
            except Exception as error:  # the job client raises RuntimeError with the server's reason
                # A cluster that has just started answers before its job agent is up.
                if "No available agent" in str(error) and time.monotonic() < deadline:
                    time.sleep(1)
                    continue
                if "413" in str(error):
                    raise ClusterError(f"The script's folder {script.parent} is larger than the cluster accepts as a "
                                       f"job's working directory ({error}); leave data and outputs out of it with a "
                                       ".gitignore, or move them elsewhere.") from None
                raise ClusterError(f"The Ray cluster at {self.address} refused the job: {error}") from None

    def follow(self, job_id: str, decoder: JobLogDecoder) -> Exception | None:
        """Feeds the job's log to ``decoder`` until the job ends; returns the error if contact was lost."""

        async def tail() -> None:
            async for chunk in self.client.tail_job_logs(job_id):
                decoder.feed(chunk)

        try:
            asyncio.run(tail())
        except Exception as error:  # noqa: BLE001 - a lost cluster is reported, not raised
            return error
        finally:
            decoder.close()
        return None

    def job_info(self, job_id: str):
        return self.client.get_job_info(job_id)

    def logs(self, job_id: str) -> str:
        return self.client.get_job_logs(job_id)

    def stop(self, job_id: str) -> None:
        self.client.stop_job(job_id)

    def jobs(self) -> list[Any]:
        """The cluster's jobs that carry a layerflow run, newest first."""
        jobs = [j for j in self.client.list_jobs() if (j.metadata or {}).get("layerflow_run_id")]
        return sorted(jobs, key=lambda j: j.start_time or 0, reverse=True)


def read_requirements(path: str | os.PathLike[str] | None) -> list[str] | None:
    """The requirement lines of a pip requirements file (comments and blank lines dropped)."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"Requirements file {str(path)!r} does not exist.")
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class RemoteRun:
    """The local folder of a run made on Ray: opened at submission, filled as the job reports."""

    def __init__(self, store: RunStore, script: Path, flags: Mapping[str, Any], properties: Mapping[str, Any],
                 address: str, args: Sequence[str] = (), run_id: str | None = None):
        self.store = store
        self.run_id, self.run_dir, start = new_run_folder(store.path, run_id)
        self.script = os.path.relpath(script) if script.is_relative_to(Path.cwd()) else str(script)
        self.record: dict[str, Any] = {
            "id": self.run_id, "script": self.script, "args": list(args), "start": start.isoformat(),
            "end": None, "status": "running", "host": socket.gethostname(), "cwd": os.getcwd(),
            "requested_flags": dict(flags), "properties": dict(properties),
            "remote": {"transport": "ray-job", "address": address, "job_id": None},
        }
        self._write()
        if properties:
            f.write_json(self.run_dir / f.PROPERTIES_FILE, dict(properties))
        self._lock = threading.Lock()

    @classmethod
    def reopen(cls, store: RunStore, run_id: str) -> "RemoteRun":
        self = cls.__new__(cls)
        self.store, self.run_id, self.run_dir = store, run_id, store.path / run_id
        self.record = f.read_json(self.run_dir / f.RUN_FILE, {}) or {}
        self.script = self.record.get("script")
        self._lock = threading.Lock()
        return self

    def _write(self) -> None:
        f.write_json(self.run_dir / f.RUN_FILE, self.record)
        self.store.index.update([self.run_dir])

    def submitted(self, job_id: str) -> None:
        self.record["remote"]["job_id"] = job_id
        self._write()

    def add_output(self, line: str) -> None:
        with self._lock, open(self.run_dir / f.OUTPUT_FILE, "a") as stream:
            stream.write(line + "\n")

    def add_metrics(self, epoch: dict[str, Any]) -> None:
        with self._lock:
            f.append_jsonl(self.run_dir / f.METRICS_FILE, epoch)

    def file_archive(self, data: bytes) -> dict[str, Any]:
        """Replaces the folder's contents with the run folder the job sent back."""
        for stale in (f.OUTPUT_FILE, f.METRICS_FILE):
            (self.run_dir / stale).unlink(missing_ok=True)
        unpack_run(data, self.run_dir)
        remote_record = f.read_json(self.run_dir / f.RUN_FILE, {}) or {}
        remote_record.update({"script": self.script, "remote": {**self.record["remote"], "host": remote_record.get("host")},
                              "host": self.record.get("host"), "cwd": self.record.get("cwd")})
        self.record = remote_record
        self._write()
        return self.final_record()

    def finish(self, status: str, error: str | None, end: str | None = None) -> dict[str, Any]:
        """Ends the run with ``status`` (when the job sent no archive: it failed to start, was lost or killed)."""
        self.record.update({"status": status, "error": error, "end": end or _now()})
        self._write()
        return self.final_record()

    def final_record(self) -> dict[str, Any]:
        record = read_record(self.run_dir)
        record.pop("problems", None)
        record["path"] = str(self.run_dir)
        return record


def collect_job(cluster: RayCluster, run: RemoteRun, job_id: str, decoder: JobLogDecoder,
                lost: Exception | None, requested: tuple[str, str] | None = None) -> dict[str, Any]:
    """Files what a finished (or lost) job left: its archive if it sent one, else its log and why it ended."""
    if lost is None:
        try:
            info = cluster.job_info(job_id)
        except Exception as error:  # noqa: BLE001
            lost, info = error, None
    if decoder.archive is not None:
        record = run.file_archive(decoder.archive)
        if requested and record["status"] != "completed":  # a stop that came after the end changes nothing
            record = run.finish(*requested, end=record.get("end"))
        return record
    if lost is not None:
        return run.finish("failed", f"lost contact with the Ray cluster at {cluster.address} while job {job_id} "
                                    f"ran ({type(lost).__name__}: {lost}); its output until then is in output.log")
    status = getattr(info.status, "value", str(info.status))
    if requested:
        return run.finish(*requested)
    if status == "STOPPED":
        return run.finish("interrupted", f"the Ray job {job_id} was stopped")
    problem = decoder.archive_problem or "the job sent no run folder back (is layerflow installed on the cluster?)"
    reason = info.message or problem
    return run.finish("failed", f"Ray job {job_id} {status.lower()}: {reason}")


class RayJobs:
    """The Ray transport of the tuner: each trial is a Ray job, ``parallel`` of them at a time."""

    name = "ray"

    def __init__(self, address: str, script: Path, runs_dir: Path, args: Sequence[str] = (),
                 command_line_flags: Mapping[str, str] | None = None, cpus: float = 1, gpus: float = 0,
                 requirements: str | os.PathLike[str] | None = None, echo_trial_output: bool = False,
                 on_output: Callable[[str], None] | None = None, limit_threads: bool = False):
        self.requirements = read_requirements(requirements)
        self.cluster = RayCluster.connect(address)
        self.store = RunStore(runs_dir)
        self.script, self.args = Path(script), list(args)
        self.command_line_flags = dict(command_line_flags or {})
        self.cpus, self.gpus = cpus, gpus
        self.on_output = on_output or ((lambda line: print(line, flush=True)) if echo_trial_output else None)
        self._exclude = self._runs_dir_exclude()
        # Trials sharing a node use the CPUs they reserved, as Ray's own tasks do.
        threads = str(max(1, int(cpus)))
        self.env_vars = {n: threads for n in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")} \
            if limit_threads else {}

    def _runs_dir_exclude(self) -> list[str]:
        """Runs dirs inside the script's folder (this one and any holding an index) stay here."""
        folder = self.script.parent.resolve()
        found = {path.parent for path in folder.glob(f"*/{INDEX_FILE}")}
        if self.store.path.resolve().is_relative_to(folder):
            found.add(self.store.path.resolve())
        return sorted(f"/{path.relative_to(folder).as_posix()}" for path in found)

    def start(self, trial: Trial, properties: Mapping[str, Any]) -> tuple[RemoteRun, str]:
        run = RemoteRun(self.store, self.script, trial.flags, properties, self.cluster.address, self.args)
        trial.run_id = run.run_id
        try:
            job_id = self.cluster.submit(self.script, run.run_id, trial.flags, properties, self.args,
                                         self.command_line_flags, self.cpus, self.gpus, self.requirements,
                                         self._exclude, self.env_vars)
        except ClusterError as error:
            run.finish("failed", str(error))
            raise
        run.submitted(job_id)
        trial.handle = {"job_id": job_id, "requested": None}
        return run, job_id

    def follow(self, trial: Trial, run: RemoteRun, job_id: str, on_epoch: EpochCallback | None) -> dict[str, Any]:
        def on_output(line: str) -> None:
            run.add_output(line)
            if self.on_output:
                self.on_output(line)

        def on_metrics(epoch: dict[str, Any]) -> None:
            run.add_metrics(epoch)
            reason = on_epoch(trial, epoch) if on_epoch else None
            if reason:
                self.stop(trial, "stopped", reason)

        decoder = JobLogDecoder(on_output, on_metrics)
        lost = self.cluster.follow(job_id, decoder)
        return collect_job(self.cluster, run, job_id, decoder, lost, trial.handle.get("requested"))

    def run(self, trial: Trial, properties: Mapping[str, Any], on_epoch: EpochCallback) -> dict[str, Any]:
        run, job_id = self.start(trial, properties)
        return self.follow(trial, run, job_id, on_epoch)

    def stop(self, trial: Trial, status: str, reason: str) -> None:
        if not isinstance(trial.handle, dict) or trial.handle.get("requested"):
            return
        trial.handle["requested"] = (status, reason)
        try:
            self.cluster.stop(trial.handle["job_id"])
        except Exception as error:  # noqa: BLE001 - the follow loop reports a lost cluster
            print(f"Could not stop Ray job {trial.handle['job_id']}: {error}", file=sys.stderr)

    def close(self) -> None:
        self.cluster.close()
