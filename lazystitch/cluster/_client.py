"""The one place that starts or connects a dask.distributed Client."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from lazystitch.errors import ConfigError, LazystitchError

__all__ = [
    "JOBQUEUE_CLASSES",
    "active_client",
    "cluster_client",
    "default_workers",
    "jobqueue_cluster",
]

log = logging.getLogger(__name__)

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": 16 << 20}


def active_client() -> Any:
    """The ``distributed`` Client that library code runs on, or None (use dask's local
    scheduler). Library functions use this and never start a cluster themselves."""
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def default_workers() -> int:
    """One single-threaded worker process per available core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


JOBQUEUE_CLASSES = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
}
JOBQUEUE_DEFAULTS: dict[str, Any] = {"cores": 1, "processes": 1, "memory": "4GiB"}


@contextlib.contextmanager
def cluster_client(
    *,
    kind: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    memory_limit: str | None = "auto",
    threads_per_worker: int = 1,
    dashboard: bool = True,
    jobs: int = 2,
    max_jobs: int | None = None,
    jobqueue: dict[str, Any] | None = None,
    wait_timeout: float = 300.0,
) -> Iterator[object]:
    """Start the cluster ``kind`` names (or connect to ``scheduler``); yield its Client.

    Parameters
    ----------
    kind : {"local", "address", "slurm", "pbs", "sge", "lsf"}, optional
        ``local``: a LocalCluster of worker processes. ``address``: connect to the running
        scheduler at ``scheduler``. The others: a dask-jobqueue cluster whose workers run as
        batch jobs. Default: ``address`` if ``scheduler`` is given, else ``local``.
    scheduler : str, optional
        Address of a running scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    workers : int, optional
        Worker processes of the LocalCluster (default: one per core).
    memory_limit : str, optional
        Per LocalCluster worker, e.g. ``"4GiB"``; ``"auto"`` splits the machine's memory.
    threads_per_worker : int
    dashboard : bool
        Serve the dashboard (on a free port) when starting a LocalCluster.
    jobs, max_jobs : int
        Batch clusters keep ``jobs`` worker jobs (a job that dies or is cancelled is
        replaced), and grow adaptively up to ``max_jobs`` with the load.
    jobqueue : dict
        Passed to dask-jobqueue's cluster class (``cores``, ``memory``, ``walltime``,
        ``queue``, ``account``, ``job_script_prologue``, ``interface``, ...), over the defaults
        of one single-threaded worker per job with 4 GiB.
    wait_timeout : float
        Seconds to wait for the first worker of a batch cluster or existing scheduler.

    Yields
    ------
    distributed.Client
        Set as the default client while the context is open.

    Raises
    ------
    ConfigError
        If dask-jobqueue is missing or rejects a ``jobqueue`` setting.
    LazystitchError
        If no worker joins within ``wait_timeout``.
    """
    kind = kind or ("address" if scheduler else "local")
    if kind == "address":
        from distributed import Client

        with Client(scheduler, timeout=wait_timeout) as client:
            log.info("connected to scheduler %s", scheduler)
            _wait_for_a_worker(client, f"the scheduler at {scheduler}", wait_timeout)
            yield client
        return
    if kind in JOBQUEUE_CLASSES:
        with _jobqueue_client(kind, jobs, max_jobs, jobqueue or {}, wait_timeout) as client:
            yield client
        return
    with _local_client(workers, memory_limit, threads_per_worker, dashboard) as client:
        yield client


def _wait_for_a_worker(client: Any, what: str, timeout: float) -> None:
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise LazystitchError(
            f"no dask worker joined {what} within {timeout:g} s (cluster.wait_timeout); "
            "check that workers are running (for batch jobs: the queue and the job logs)"
        ) from None


def jobqueue_cluster(kind: str, settings: dict[str, Any]) -> Any:
    """The dask-jobqueue cluster object of ``kind`` (no job submitted yet), built from the
    config's ``cluster.jobqueue`` settings over lazystitch's defaults.

    Raises
    ------
    ConfigError
        If dask-jobqueue is not installed, or it rejects a setting.
    """
    try:
        import dask_jobqueue
    except ImportError:
        raise ConfigError(
            f"cluster.kind: {kind} needs dask-jobqueue; install it with "
            "pip install 'lazystitch[jobqueue]'"
        ) from None
    cls = getattr(dask_jobqueue, JOBQUEUE_CLASSES[kind])
    options = {**JOBQUEUE_DEFAULTS, **settings}
    # workers inherit the job's environment: the same heap setting as lazystitch's LocalCluster
    prologue = [f"export {k}={v}" for k, v in MALLOC_ENV.items()]
    options["job_script_prologue"] = prologue + list(options.get("job_script_prologue") or [])
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid configuration: cluster.jobqueue: {exc}") from None


@contextlib.contextmanager
def _jobqueue_client(
    kind: str, jobs: int, max_jobs: int | None, settings: dict[str, Any], wait_timeout: float
) -> Iterator[object]:
    from distributed import Client

    with jobqueue_cluster(kind, settings) as cluster, Client(cluster) as client:
        # adapt() rather than scale(): a worker job that dies or is cancelled is replaced
        cluster.adapt(minimum_jobs=jobs, maximum_jobs=max_jobs or jobs)
        log.info("submitted %d %s worker job(s)", jobs, kind)
        _wait_for_a_worker(client, f"the {kind} cluster", wait_timeout)
        yield client


@contextlib.contextmanager
def _local_client(
    workers: int | None, memory_limit: str | None, threads_per_worker: int, dashboard: bool
) -> Iterator[object]:
    import dask
    from distributed import Client, LocalCluster

    n = workers or default_workers()
    # distributed sets MALLOC_TRIM_THRESHOLD_ for its workers, which also fixes glibc's mmap
    # threshold at 128 KiB: every tile-sized array is then a fresh mmap whose pages fault in
    # again (measured: 13.4 s vs 9.4 s for 196 tiles of 2048^2). Arrays up to 16 MiB come from
    # the heap instead; memory is still trimmed back to the OS.
    env = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **MALLOC_ENV}
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": env}),
        LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=":0" if dashboard else None,
        ) as cluster,
        Client(cluster) as client,
    ):
        log.info("started a LocalCluster with %d worker process(es)", n)
        yield client
