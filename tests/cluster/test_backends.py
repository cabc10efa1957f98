"""Cluster backends: an existing scheduler, a killed worker, SLURM jobs (one cancelled), configs."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest

from lazystitch.cluster import jobqueue_cluster
from lazystitch.config import load_config
from lazystitch.errors import ConfigError
from lazystitch.testing import make_tiles
from lazystitch.writers import OutputPaths, describe_output

CONFIGS = Path(__file__).parents[2] / "configs"
TOOLS = Path(__file__).parents[2] / "tools"


def _mosaic(path):
    with h5py.File(path) as f:
        return f["mosaic"][...]


@pytest.fixture(scope="module")
def job(tmp_path_factory, stitch_command):
    """A tile set big enough to kill things mid-run, and its mosaic from a plain local run."""
    tmp = tmp_path_factory.mktemp("cluster")
    s = make_tiles(tmp / "tiles", grid=(5, 6), tile_yx=(200, 200), overlap=30, jitter=8, seed=7)
    local = tmp / "local.h5"
    res = subprocess.run(stitch_command(s, local, "--workers", "2"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return s, _mosaic(local)


def _durable(out):
    """Chunks durably written so far by a run of either write mode (0 before it starts)."""
    try:
        return describe_output(out).get("chunks_written", 0)
    except (FileNotFoundError, OSError):
        return 0


def _wait_for_progress(out, proc, chunks, timeout=120):
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if _durable(out) > chunks:
            return
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before the fault; make the job larger"
    raise AssertionError("no progress within the timeout")


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_existing_scheduler_and_workers_started_by_hand(tmp_path, job, stitch_command):
    s, want = job
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        procs += [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        out = tmp_path / "m.h5"
        res = subprocess.run(
            stitch_command(s, out, "--scheduler", address),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr
        np.testing.assert_array_equal(_mosaic(out), want)
        assert all(p.poll() is None for p in procs)  # lazystitch left the cluster running
    finally:
        for p in procs[::-1]:
            p.terminate()
            p.wait(timeout=30)


@pytest.mark.slow
def test_a_worker_killed_mid_run_does_not_change_the_mosaic(tmp_path, job, stitch_command):
    s, want = job
    out = tmp_path / "m.h5"
    proc = subprocess.Popen(
        stitch_command(s, out, "--workers", "2", "--processes"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_progress(out, proc, chunks=100)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers, "no worker processes found"
    os.kill(workers[0].pid, signal.SIGKILL)  # one worker process, by pid
    summary = _finish(proc)
    assert summary["chunks_written"] == summary["chunks_total"]
    np.testing.assert_array_equal(_mosaic(out), want)


def _hog(nbytes):
    """Hold ``nbytes`` of touched memory in this worker until it is killed."""
    import numpy

    global _HELD
    _HELD = numpy.ones(nbytes, dtype=numpy.uint8)


@pytest.mark.slow
def test_a_worker_over_its_memory_limit_is_restarted_and_the_run_finishes(
    tmp_path, job, stitch_command
):
    from distributed import Client, LocalCluster

    s, want = job
    out = tmp_path / "m.h5"
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            memory_limit="1GiB",
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        pids = client.run(os.getpid)
        proc = subprocess.Popen(
            stitch_command(s, out, "--scheduler", cluster.scheduler_address),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for_progress(out, proc, chunks=100)
            victim = sorted(pids)[0]
            # 1.2 GiB held in one worker: its nanny sees it over 95 % of the limit and restarts it
            client.run(_hog, 1200 << 20, workers=[victim], on_error="ignore")
            summary = _finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        client.wait_for_workers(2, timeout=60)
        now = client.run(os.getpid)
        assert pids[victim] not in now.values(), "the worker over its limit was not restarted"
        assert len(now) == 2
    assert summary["chunks_written"] == summary["chunks_total"]
    np.testing.assert_array_equal(_mosaic(out), want)


def _slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    res = subprocess.run([str(TOOLS / "slurm-localhost"), "status"], capture_output=True)
    return res.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _slurm_up(), reason="no SLURM here: run tools/slurm-localhost start")
def test_slurm_jobs_with_one_cancelled_mid_run_give_the_local_mosaic(tmp_path, job):
    """Workers as SLURM jobs write shard files; one job is cancelled mid-run."""
    s, want = job
    out = tmp_path / "m.h5"
    config = tmp_path / "slurm.yaml"
    config.write_text(
        f"""
tiles: {{pattern: "{s.pattern}"}}
layout: {{positions: "{s.positions_csv}"}}
output: {{path: "{out}", chunks: [24, 24], compression: "gzip:9", write_mode: shards}}
cluster:
  kind: slurm
  jobs: 2
  wait_timeout: 120
  jobqueue:
    cores: 1
    memory: 1GiB
    walltime: "00:20:00"
    interface: lo
    log_directory: "{tmp_path / "logs"}"
    job_name: lazystitch-test
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "lazystitch", "stitch", str(config), "--json", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_progress(out, proc, chunks=100, timeout=180)
        jobs = subprocess.run(
            ["squeue", "-h", "-n", "lazystitch-test", "-t", "RUNNING", "-o", "%i"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert jobs, "no running worker job"
        subprocess.run(["scancel", jobs[0]], check=True)
        summary = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert summary["chunks_written"] == summary["chunks_total"]
    assert summary["write_mode"] == "shards" and not OutputPaths(out).shards.exists()
    np.testing.assert_array_equal(_mosaic(out), want)
    deadline = time.monotonic() + 30  # the cluster cancels its jobs on the way out
    while time.monotonic() < deadline:
        left = subprocess.run(
            ["squeue", "-h", "-n", "lazystitch-test", "-o", "%i"], capture_output=True, text=True
        ).stdout.split()
        if not left:
            break
        time.sleep(0.5)
    assert not left


@pytest.mark.parametrize("kind", ["slurm", "pbs", "sge", "lsf"])
def test_batch_configs_pass_their_settings_to_dask_jobqueue(tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)  # the examples log to a relative folder
    cfg = load_config(CONFIGS / f"{kind}.yaml")
    assert cfg.cluster.kind == kind and cfg.cluster.jobs == 4
    cluster = jobqueue_cluster(kind, cfg.cluster.jobqueue)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert cfg.cluster.jobqueue["queue"] in script
    assert "export MALLOC_MMAP_THRESHOLD_=16777216" in script
    assert "export MALLOC_TRIM_THRESHOLD_=67108864" in script
    assert "source /path/to/venv/bin/activate" in script


def test_address_config_and_unknown_jobqueue_settings(tmp_path, monkeypatch):
    cfg = load_config(CONFIGS / "address.yaml")
    assert cfg.cluster.kind == "address" and cfg.cluster.scheduler.startswith("tcp://")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"cluster\.jobqueue: .*no_such_setting"):
        jobqueue_cluster("slurm", {"no_such_setting": 1}).close()


@pytest.mark.parametrize("dashboard", [True, False])
def test_the_dashboard_is_served_only_when_asked(dashboard):
    import urllib.error
    import urllib.request

    from lazystitch.cluster import cluster_client, dashboard_link

    with cluster_client(workers=1, dashboard=dashboard) as client:
        link = dashboard_link(client)
        # distributed formats a link either way; only a served dashboard answers on it
        raw = client.dashboard_link
        try:
            with urllib.request.urlopen(raw, timeout=10) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
    assert (link == raw) is dashboard
    assert (link is None) is not dashboard
    assert status == (200 if dashboard else 404)


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def _mmapped_by_an_array(nbytes: int) -> int:
    """How many more regions glibc maps while an array of ``nbytes`` is alive (0: it came
    from the heap), from ``mallinfo2``."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )]  # fmt: skip

    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    before = mallinfo2().hblks
    array = np.ones(nbytes // 8)
    during = mallinfo2().hblks
    del array
    return during - before


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's heap")
@pytest.mark.parametrize("processes", [False, True], ids=["in-process", "worker-processes"])
def test_tasks_run_with_one_blas_thread_and_strip_sized_arrays_from_the_heap(processes):
    """Registration's tasks multiply small matrices: OpenBLAS's own threads under each task
    thread slowed it down, and so did glibc's heap as distributed sets it for its workers
    (every array above 128 KiB a fresh mmap whose pages fault in again)."""
    from lazystitch.cluster import cluster_client

    with cluster_client(workers=1, processes=processes, dashboard=False) as client:
        threads = client.submit(_blas_threads, pure=False).result()
        mapped = client.submit(_mmapped_by_an_array, 8 << 20, pure=False).result()
    assert threads and set(threads) == {1}
    assert mapped == 0
