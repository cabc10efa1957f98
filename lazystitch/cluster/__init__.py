"""Execution: start or attach a dask.distributed Client, and report progress."""

from lazystitch.cluster._client import (
    JOBQUEUE_CLASSES,
    active_client,
    cluster_client,
    dashboard_link,
    default_workers,
    jobqueue_cluster,
)
from lazystitch.cluster._progress import chunk_progress

__all__ = [
    "JOBQUEUE_CLASSES",
    "active_client",
    "chunk_progress",
    "cluster_client",
    "dashboard_link",
    "default_workers",
    "jobqueue_cluster",
]
