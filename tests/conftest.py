"""Shared fixtures: real LocalClusters with worker processes, scoped to the session."""

from __future__ import annotations

import contextlib
import logging
import sys

import pytest

logging.getLogger("distributed").setLevel(logging.WARNING)


@contextlib.contextmanager
def _cluster(n_workers: int):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit="2GiB",
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def _cluster2():
    with _cluster(2) as client:
        yield client


@pytest.fixture(scope="session")
def _cluster1():
    with _cluster(1) as client:
        yield client


@pytest.fixture
def client(_cluster2):
    """A Client of a LocalCluster with 2 worker processes, current for this test only."""
    with _cluster2.as_current():
        yield _cluster2


@pytest.fixture(params=[1, 2], ids=["1worker", "2workers"])
def any_client(request):
    """Each test runs on a 1-worker and on a 2-worker LocalCluster."""
    c = request.getfixturevalue("_cluster1" if request.param == 1 else "_cluster2")
    with c.as_current():
        yield c


def _stitch_command(tiles, out, *extra: str) -> list[str]:
    """``lazystitch stitch`` of a ``make_tiles`` set at its positions, in small gzip chunks
    (many chunks: a run lasts long enough to be interrupted), JSON summary last."""
    return [
        sys.executable,
        "-m",
        "lazystitch",
        "stitch",
        "--tiles",
        tiles.pattern,
        "--positions",
        str(tiles.positions_csv),
        "--out",
        str(out),
        "--chunks",
        "24,24",
        "--compression",
        "gzip:9",
        "--json",
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="session")
def stitch_command():
    """Builds the argv of a CLI stitch run (see ``_stitch_command``)."""
    return _stitch_command
