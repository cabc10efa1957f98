"""Execution: start or attach a dask.distributed Client, and report progress."""

from lazystitch.cluster._client import active_client, cluster_client, default_workers
from lazystitch.cluster._progress import chunk_progress

__all__ = ["active_client", "chunk_progress", "cluster_client", "default_workers"]
