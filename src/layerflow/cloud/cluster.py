"""A Ray cluster's job server: finding and authenticating to it, submitting, following, stopping jobs.

``RayCluster.connect(address)`` reaches a cluster by its job-submission (dashboard) address,
``http://head:8265``, with the cluster's token when it has one, or starts one here with
``"local"``. Everything else in ``cloud/`` talks to Ray through it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from layerflow.cloud.job_log import JobLogDecoder
from layerflow.errors import LayerflowError, MissingDependencyError, MissingFileError
from layerflow.runs.source import NEVER_COPIED

ADDRESS_ENV = "RAY_API_SERVER_ADDRESS"
_CONNECT_TIMEOUT_SECONDS = 5
_AGENT_WAIT_SECONDS = 60
TERMINAL_STATUSES = ("SUCCEEDED", "FAILED", "STOPPED")
# Never uploaded with the script's folder (besides what its .gitignore names).
_EXCLUDES = [*NEVER_COPIED, "*.pyc"]


class ClusterError(LayerflowError, RuntimeError):
    """A Ray cluster that cannot be reached or refuses a job."""


def _import_job_client():
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise MissingDependencyError("Running on Ray needs Ray's job client: pip install 'layerflow[ray]'.") from None
    return JobSubmissionClient


def normalise_address(address: str | None) -> str:
    """``head:8265`` -> ``http://head:8265``; None -> ``$RAY_API_SERVER_ADDRESS``."""
    address = address or os.environ.get(ADDRESS_ENV)
    if not address:
        raise ClusterError(
            "No Ray cluster given: pass --address http://HEAD:8265 (the cluster's job-submission "
            f"address, as `ray job submit` takes it), --address local, or set {ADDRESS_ENV}."
        )
    address = address.strip().rstrip("/")
    if address.startswith("ray://"):
        raise ClusterError(
            f"{address} is a Ray client address; layerflow submits jobs, so give the dashboard's "
            "job-submission address instead, e.g. http://head:8265."
        )
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
            raise ClusterError(
                f"The Ray cluster at {address} requires an authentication token"
                + (" and refused this one" if token else "")
                + "; set RAY_AUTH_TOKEN (or "
                "RAY_AUTH_TOKEN_PATH) to the cluster's token, as `ray get-auth-token` prints it."
            ) from None
        raise ClusterError(
            f"{address} answered {error.code} {error.reason}; expected a Ray cluster's "
            "job-submission (dashboard) address, e.g. http://head:8265."
        ) from None
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

    def __init__(
        self, address: str, headers: dict[str, str] | None = None, started_here: bool = False, python: str = "python"
    ):
        self.address = address
        self.started_here = started_here
        self.python = python
        self.client = _import_job_client()(address, headers=headers or None)

    @classmethod
    def connect(cls, address: str | None) -> RayCluster:
        quiet_ray_logging()
        if address == "local":
            return cls._start_local()
        address = normalise_address(address)
        return cls(address, check_reachable(address))

    @classmethod
    def _start_local(cls) -> RayCluster:
        _import_job_client()
        import ray

        context = ray.init(
            address="local",
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            num_cpus=os.cpu_count(),
            configure_logging=False,
            log_to_driver=False,
        )
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

    def submit(
        self,
        script: Path,
        run_id: str,
        flags: Mapping[str, Any],
        properties: Mapping[str, Any],
        args: Sequence[str] = (),
        command_line_flags: Mapping[str, str] | None = None,
        cpus: float = 1,
        gpus: float = 0,
        requirements: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        env_vars: Mapping[str, str] | None = None,
    ) -> str:
        """Submits one tracked run of ``script`` (its folder is the job's working dir); returns the job id."""
        payload = {
            "script": script.name,
            "run_id": run_id,
            "flags": dict(flags),
            "properties": dict(properties),
            "args": list(args),
            "command_line_flags": dict(command_line_flags or {}),
        }
        runtime_env: dict[str, Any] = {"working_dir": str(script.parent), "excludes": [*_EXCLUDES, *exclude]}
        if requirements:
            runtime_env["pip"] = list(requirements)
        if env_vars:
            runtime_env["env_vars"] = dict(env_vars)
        entrypoint = f"{self.python} -m layerflow.cloud.remote_entry {shlex.quote(json.dumps(payload))}"
        deadline = time.monotonic() + _AGENT_WAIT_SECONDS
        while True:
            try:
                return self.client.submit_job(
                    entrypoint=entrypoint,
                    runtime_env=runtime_env,
                    entrypoint_num_cpus=cpus,
                    entrypoint_num_gpus=gpus or None,
                    metadata={"layerflow_run_id": run_id, "script": script.name},
                )
            except Exception as error:  # noqa: BLE001 - the job client raises RuntimeError with the server's reason
                # A cluster that has just started answers before its job agent is up.
                if "No available agent" in str(error) and time.monotonic() < deadline:
                    time.sleep(1)
                    continue
                if "413" in str(error):
                    raise ClusterError(
                        f"The script's folder {script.parent} is larger than the cluster accepts as a "
                        f"job's working directory ({error}); leave data and outputs out of it with a "
                        ".gitignore, or move them elsewhere."
                    ) from None
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
