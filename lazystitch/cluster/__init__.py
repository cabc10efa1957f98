"""Execution: start or attach a dask.distributed Client, and report progress."""

from lazystitch.cluster._client import cluster_client, default_workers
from lazystitch.cluster._progress import chunk_progress

__all__ = ["chunk_progress", "cluster_client", "default_workers"]
