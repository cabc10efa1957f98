"""Preloaded into each LocalCluster worker process (``distributed`` preload).

Ctrl-C in a terminal sends SIGINT to the whole process group: the workers as well as the
``lazystitch`` process. The workers ignore it, so that only the client reacts (it makes what was
written durable, prints one line and shuts the cluster down) and no worker prints a traceback.

The worker's heap gets the setting of :mod:`lazystitch.cluster._malloc` here too: the
environment the nanny passes loses to a ``MALLOC_TRIM_THRESHOLD_`` already in the client's
environment (distributed's nanny writes its own into it when any cluster starts).
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any

from lazystitch.cluster._malloc import tune_malloc


def dask_setup(worker: Any) -> None:
    tune_malloc()
    with contextlib.suppress(ValueError):  # ValueError: not the worker's main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
