"""Preloaded into each LocalCluster worker process (``distributed`` preload).

Ctrl-C in a terminal sends SIGINT to the whole process group: the workers as well as the
``lazystitch`` process. The workers ignore it, so that only the client reacts (it makes what was
written durable, prints one line and shuts the cluster down) and no worker prints a traceback.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    with contextlib.suppress(ValueError):  # ValueError: not the worker's main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
