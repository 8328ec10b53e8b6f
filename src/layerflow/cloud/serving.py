"""Serving exported models on a Ray cluster with Ray Serve: the same server, as N replicas.

``serve_on_ray(model_dir, address=..., replicas=N)`` deploys layerflow's model server (the app
``layerflow serve`` runs: TF Serving and KServe v2 protocols, versions, token) as a Ray Serve
application through the cluster's dashboard address, the way ``serve deploy`` does: each replica
builds its own server (its own onnxruntime sessions) over ``model_dir``, and Ray Serve's proxy
spreads requests over them. With ``min_replicas``/``max_replicas`` Ray Serve autoscales between
the bounds on the requests in flight. Other Serve applications on the cluster are kept.

The replicas read ``model_dir`` by its path, so on a cluster of several machines it must be
storage that every node mounts at that path (as TF Serving's ``--model_base_path`` is);
new versions written there are picked up by every replica, as by ``layerflow serve``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from layerflow.cloud.cluster import ClusterError, check_reachable, normalise_address, quiet_ray_logging
from layerflow.errors import InvalidTypeError, InvalidValueError, MissingDependencyError, MissingFileError

APPLICATION = "layerflow"
DEPLOYMENT = "layerflow_server"
_BUILDER = "layerflow.cloud.serving:build_application"
_DEFAULT_WAIT_SECONDS = 180


def build_application(args: dict[str, Any]) -> Any:
    """Ray Serve's application builder (run on the cluster): the model server as one deployment.

    Args:
        args: ``model_dir`` (the model base directory), ``token`` (or None), ``poll_seconds``.

    Returns:
        The bound Ray Serve application.
    """
    from ray import serve

    model_dir, token = str(args["model_dir"]), args.get("token")
    poll_seconds = float(args.get("poll_seconds", 1.0))

    def build_server() -> Any:  # evaluated on each replica: its own sessions and version polling
        from layerflow.deploy.server import create_app

        return create_app(model_dir, token=token, poll_seconds=poll_seconds)

    ingress = serve.deployment(name=DEPLOYMENT)(serve.ingress(build_server)())
    return ingress.bind()


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{name}={value!r} must be a whole number.")
    if value < 1:
        raise InvalidValueError(f"{name}={value!r} must be at least 1.")
    return value


def _scaling(replicas: int, min_replicas: int | None, max_replicas: int | None) -> dict[str, Any]:
    if min_replicas is None and max_replicas is None:
        return {"num_replicas": _positive("replicas", replicas)}
    low = _positive("min_replicas", min_replicas if min_replicas is not None else 1)
    high = _positive("max_replicas", max_replicas if max_replicas is not None else max(low, replicas))
    if low > high:
        raise InvalidValueError(f"min_replicas={low} is above max_replicas={high}; expected min <= max.")
    initial = min(max(replicas, low), high)
    return {
        "autoscaling_config": {
            "min_replicas": low,
            "max_replicas": high,
            "initial_replicas": initial,
            "target_ongoing_requests": 2,
        }
    }


def _client(address: str | None) -> Any:
    try:
        from ray.dashboard.modules.serve.sdk import ServeSubmissionClient
    except ImportError:
        raise MissingDependencyError("Serving on Ray needs Ray Serve: pip install 'ray[serve]'.") from None
    quiet_ray_logging()
    address = normalise_address(address)
    headers = check_reachable(address)
    return ServeSubmissionClient(address, headers=headers or None)


def _other_applications(details: dict[str, Any], name: str) -> list[dict[str, Any]]:
    kept = []
    for app_name, app in (details.get("applications") or {}).items():
        config = app.get("deployed_app_config")
        if app_name != name and config:
            kept.append(config)
    return kept


def serve_on_ray(
    model_dir: str | os.PathLike[str],
    address: str | None = None,
    replicas: int = 1,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    token: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    name: str = APPLICATION,
    route_prefix: str = "/",
    wait_seconds: float = _DEFAULT_WAIT_SECONDS,
) -> dict[str, Any]:
    """Deploys every model under ``model_dir`` on a Ray cluster as a Ray Serve application.

    Args:
        model_dir: the model base directory (``<name>/<version>/`` bundles), at the same path on
            every node of the cluster.
        address: the cluster's dashboard (job-submission) address, ``http://head:8265``
            (default ``$RAY_API_SERVER_ADDRESS``).
        replicas: server replicas (or the initial number when autoscaling).
        min_replicas: with ``max_replicas``, autoscale between these bounds.
        max_replicas: the upper autoscaling bound.
        token: when given, every route but health needs ``Authorization: Bearer <token>``.
        host: the address Ray Serve's proxy binds on each node (used when Serve starts on the cluster).
        port: its HTTP port (likewise).
        name: the Serve application's name; deploying again under the same name updates it.
        route_prefix: the URL prefix the application answers under.
        wait_seconds: how long to wait for every replica to be running.

    Returns:
        ``{"name", "url", "status", "replicas", "deployment"}``: the application once running.

    Example:
        >>> lf.cloud.serve_on_ray("models/", address="http://head:8265", replicas=2)["url"]
        'http://127.0.0.1:8000/'
    """
    if not isinstance(model_dir, (str, os.PathLike)):
        raise InvalidTypeError(f"model_dir must be a folder path; got {type(model_dir).__name__}.")
    folder = Path(model_dir).resolve()
    if not folder.is_dir():
        raise MissingFileError(
            f"Model directory {folder} does not exist; export a model first: layerflow export RUN --out {model_dir}."
        )
    if token is not None and (not isinstance(token, str) or not token):
        raise InvalidValueError("token must be a non-empty string (or None for no token).")
    if not isinstance(route_prefix, str) or not route_prefix.startswith("/"):
        raise InvalidValueError(f"route_prefix={route_prefix!r} must start with '/'.")
    scaling = _scaling(replicas, min_replicas, max_replicas)
    client = _client(address)
    details = client.get_serve_details()
    application = {
        "name": name,
        "route_prefix": route_prefix,
        "import_path": _BUILDER,
        "args": {"model_dir": str(folder), "token": token},
        "deployments": [{"name": DEPLOYMENT, **scaling}],
    }
    config = {
        "http_options": {"host": host, "port": port},
        "applications": [*_other_applications(details, name), application],
    }
    client.deploy_applications(config)
    status = _wait_running(client, name, wait_seconds)
    http = client.get_serve_details().get("http_options") or {}
    url_host = http.get("host", host)
    url_host = "127.0.0.1" if url_host in ("0.0.0.0", "::") else url_host
    return {**status, "url": f"http://{url_host}:{http.get('port', port)}{route_prefix}"}


def _wait_running(client: Any, name: str, wait_seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait_seconds
    while True:
        app = (client.get_serve_details().get("applications") or {}).get(name) or {}
        deployment = (app.get("deployments") or {}).get(DEPLOYMENT) or {}
        running = [r for r in deployment.get("replicas") or [] if r.get("state") == "RUNNING"]
        status = app.get("status")
        if status == "RUNNING":
            return {"name": name, "status": status, "replicas": len(running), "deployment": DEPLOYMENT}
        if status == "DEPLOY_FAILED":
            raise ClusterError(
                f"Ray Serve could not deploy {name!r}: {app.get('message') or deployment.get('message')}"
            )
        if time.monotonic() > deadline:
            raise ClusterError(
                f"Ray Serve application {name!r} is not running after {wait_seconds:.0f} s (status {status}, "
                f"{len(running)} replica(s) running): the cluster may lack the CPUs for every replica "
                f"({deployment.get('message') or 'no message from Serve'}). It stays deployed; "
                "check `serve status` or remove it with lf.cloud.stop_serving."
            )
        time.sleep(0.5)


def stop_serving(address: str | None = None, name: str = APPLICATION) -> bool:
    """Removes the Serve application ``name`` from the cluster, keeping its other applications.

    Args:
        address: the cluster's dashboard address (default ``$RAY_API_SERVER_ADDRESS``).
        name: the application's name.

    Returns:
        True if it was deployed, False if there was none of that name.

    Example:
        >>> lf.cloud.stop_serving("http://head:8265")
        True
    """
    client = _client(address)
    details = client.get_serve_details()
    if name not in (details.get("applications") or {}):
        return False
    others = _other_applications(details, name)
    if others:
        client.deploy_applications({"http_options": details.get("http_options") or {}, "applications": others})
    else:
        client.delete_applications()
    return True
