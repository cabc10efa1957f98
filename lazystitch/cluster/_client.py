"""The one place that starts or connects a dask.distributed Client."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from lazystitch.cluster._malloc import MALLOC_ENV, tune_malloc
from lazystitch.errors import ConfigError, LazystitchError

__all__ = [
    "JOBQUEUE_CLASSES",
    "active_client",
    "cluster_client",
    "default_workers",
    "jobqueue_cluster",
]

log = logging.getLogger(__name__)


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
    processes: bool = False,
    dashboard: bool = True,
    jobs: int = 2,
    max_jobs: int | None = None,
    jobqueue: dict[str, Any] | None = None,
    wait_timeout: float = 300.0,
    connect_timeout: float = 30.0,
    notify: Callable[[str], None] | None = None,
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
    processes : bool
        LocalCluster: ``workers`` worker processes, or (default) one worker in this process
        with ``workers`` threads.
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
    connect_timeout : float
        Seconds to wait for an existing scheduler to answer.
    notify : callable(str), optional
        Gets a line of text every few seconds while a scheduler or worker is awaited.

    Yields
    ------
    distributed.Client
        Set as the default client while the context is open.

    Raises
    ------
    ConfigError
        If dask-jobqueue is missing or rejects a ``jobqueue`` setting.
    LazystitchError
        If the scheduler does not answer within ``connect_timeout``, or no worker joins
        within ``wait_timeout``.
    """
    kind = kind or ("address" if scheduler else "local")
    if kind == "address":
        from distributed import Client

        assert scheduler is not None
        _probe_scheduler(scheduler, connect_timeout, notify)
        with Client(scheduler, timeout=connect_timeout) as client:
            log.info("connected to scheduler %s", scheduler)
            _wait_for_a_worker(client, f"the scheduler at {scheduler}", wait_timeout, notify)
            yield client
        return
    if kind in JOBQUEUE_CLASSES:
        with _jobqueue_client(kind, jobs, max_jobs, jobqueue or {}, wait_timeout, notify) as client:
            yield client
        return
    with _local_client(workers, memory_limit, threads_per_worker, processes, dashboard) as client:
        yield client


NOTIFY_EVERY = 5.0  # seconds between "still waiting" lines


def _probe_scheduler(
    address: str, timeout: float, notify: Callable[[str], None] | None = None
) -> None:
    """Check that a dask scheduler answers at ``address`` within ``timeout`` seconds.

    distributed's own connect retries a refused port until its timeout, silently, and waits
    forever on a port that accepts but never speaks; this bounds both and says so meanwhile.
    """
    import asyncio

    from distributed.comm import connect

    async def ask() -> None:
        comm = await connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            await comm.read()
        finally:
            comm.abort()

    async def probe() -> None:
        task = asyncio.ensure_future(ask())
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            done, _ = await asyncio.wait({task}, timeout=max(0.0, min(NOTIFY_EVERY, left)))
            if done:
                task.result()
                return
            if time.monotonic() >= deadline:
                task.cancel()
                raise TimeoutError
            if notify:
                notify(
                    f"lazystitch: waiting for the scheduler at {address} to answer "
                    f"({timeout - (deadline - time.monotonic()):.0f} of {timeout:g} s)"
                )

    try:
        asyncio.run(probe())
    except (OSError, TimeoutError, asyncio.TimeoutError, ValueError) as exc:
        why = (
            "it did not answer"
            if isinstance(exc, (TimeoutError, asyncio.TimeoutError))
            else (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        )
        raise LazystitchError(
            f"no dask scheduler answered at {address} within {timeout:g} s "
            f"(--connect-timeout, cluster.connect_timeout): {why}"
        ) from None


def _wait_for_a_worker(
    client: Any, what: str, timeout: float, notify: Callable[[str], None] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            client.wait_for_workers(1, timeout=max(0.1, min(NOTIFY_EVERY, left)))
            return
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise LazystitchError(
                    f"no dask worker joined {what} within {timeout:g} s (--wait-timeout, "
                    "cluster.wait_timeout); check that workers are running (for batch jobs: "
                    "the queue and the job logs)"
                ) from None
            if notify:
                notify(
                    f"lazystitch: waiting for a worker to join {what} "
                    f"({timeout - (deadline - time.monotonic()):.0f} of {timeout:g} s)"
                )


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
    kind: str,
    jobs: int,
    max_jobs: int | None,
    settings: dict[str, Any],
    wait_timeout: float,
    notify: Callable[[str], None] | None = None,
) -> Iterator[object]:
    from distributed import Client

    with jobqueue_cluster(kind, settings) as cluster, Client(cluster) as client:
        # adapt() rather than scale(): a worker job that dies or is cancelled is replaced
        cluster.adapt(minimum_jobs=jobs, maximum_jobs=max_jobs or jobs)
        log.info("submitted %d %s worker job(s)", jobs, kind)
        _wait_for_a_worker(client, f"the {kind} cluster", wait_timeout, notify)
        yield client


@contextlib.contextmanager
def _local_client(
    workers: int | None,
    memory_limit: str | None,
    threads_per_worker: int,
    processes: bool,
    dashboard: bool,
) -> Iterator[object]:
    import dask
    from distributed import Client, LocalCluster

    n = workers or default_workers()
    if not processes:
        from threadpoolctl import threadpool_limits

        tune_malloc()  # this process is the worker: the heap setting of _malloc
        with (
            # one BLAS thread per task thread, as distributed's nanny gives its workers:
            # OpenBLAS's own threads under each task thread made registration slower
            threadpool_limits(limits=1, user_api="blas"),
            # distributed's statistical profiler samples the worker threads every 10 ms while
            # holding the GIL, which the in-process workers share (measured: 14.0 s -> 12.2 s
            # on the 14x14 x 2048^2 job)
            dask.config.set({"distributed.worker.profile.enabled": False}),
            LocalCluster(
                n_workers=1,
                threads_per_worker=n * threads_per_worker,
                processes=False,
                memory_limit=memory_limit,
                **_dashboard_kwargs(dashboard),
                silence_logs=logging.INFO if log.isEnabledFor(logging.INFO) else logging.CRITICAL,
            ) as cluster,
            Client(cluster) as client,
        ):
            log.info("started a LocalCluster of %d thread(s) in this process", n)
            yield _note_dashboard(client, dashboard)
        return
    # distributed's nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its workers, which also fixes
    # glibc's mmap threshold at 128 KiB: every tile-sized array is then a fresh mmap whose
    # pages fault in again (measured: 13.4 s vs 9.4 s for 196 tiles of 2048^2); see _malloc
    env = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **MALLOC_ENV}
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": env}),
        LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker,
            processes=True,
            memory_limit=memory_limit,
            **_dashboard_kwargs(dashboard),
            # the workers' own log lines (a failed task's "Compute Failed" dump) only if asked
            silence_logs=logging.INFO if log.isEnabledFor(logging.INFO) else logging.CRITICAL,
            preload=["lazystitch.cluster._worker_setup"],  # workers ignore Ctrl-C
        ) as cluster,
        Client(cluster) as client,
    ):
        log.info("started a LocalCluster with %d worker process(es)", n)
        yield _note_dashboard(client, dashboard)


_NO_DASHBOARD: weakref.WeakSet = weakref.WeakSet()


def _dashboard_kwargs(dashboard: bool) -> dict[str, Any]:
    """A free port either way (two runs on one machine never collide); without a dashboard
    the scheduler serves only its plain HTTP routes and bokeh is never imported."""
    return {"dashboard_address": ":0"} | (
        {} if dashboard else {"scheduler_kwargs": {"dashboard": False}}
    )


def _note_dashboard(client: Any, dashboard: bool) -> Any:
    if not dashboard:
        _NO_DASHBOARD.add(client)
    return client


def dashboard_link(client: Any) -> str | None:
    """The dashboard's address, or None where none is served (a LocalCluster started with
    ``dashboard=False``; distributed formats a link for it all the same)."""
    if client in _NO_DASHBOARD:
        return None
    return getattr(client, "dashboard_link", None) or None
