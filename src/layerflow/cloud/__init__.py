"""Remote training on a Ray cluster: the same tracked run, submitted as a Ray job and filed back here.

``cloud_train`` runs a script there and streams it here; ``cloud_jobs``, ``cloud_logs``,
``cloud_collect`` and ``cloud_cancel`` manage jobs; ``RemoteRun`` is the per-run API
(submit, follow, collect, cancel) the tuner's Ray transport is built on. ``serve_on_ray`` serves
exported models as Ray Serve replicas (``stop_serving`` removes them).

Example:
    >>> import layerflow as lf
    >>> run = lf.cloud.cloud_train("train.py", flags={"epochs": 30}, address="http://head:8265")
    >>> run["status"], run["remote"]["job_id"]
"""

from layerflow.cloud.cluster import ClusterError, RayCluster
from layerflow.cloud.jobs import cloud_cancel, cloud_collect, cloud_jobs, cloud_logs, cloud_train
from layerflow.cloud.remote_run import RemoteRun
from layerflow.cloud.serving import serve_on_ray, stop_serving

__all__ = [
    "ClusterError",
    "RayCluster",
    "RemoteRun",
    "cloud_cancel",
    "cloud_collect",
    "cloud_jobs",
    "cloud_logs",
    "cloud_train",
    "serve_on_ray",
    "stop_serving",
]
