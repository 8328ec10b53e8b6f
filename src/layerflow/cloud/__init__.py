"""Remote training on a Ray cluster: the same tracked run, submitted as a Ray job and filed back here."""

from layerflow.cloud.jobs import cloud_cancel, cloud_collect, cloud_jobs, cloud_logs, cloud_train
from layerflow.tuning.ray_jobs import ClusterError

__all__ = ["ClusterError", "cloud_cancel", "cloud_collect", "cloud_jobs", "cloud_logs", "cloud_train"]
