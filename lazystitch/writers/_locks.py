"""One run per output at a time: a lock file beside the output naming the host and pid."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from lazystitch.errors import LazystitchWarning, OutputLockedError

__all__ = ["output_lock"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@contextlib.contextmanager
def output_lock(final: Path) -> Iterator[Path]:
    """Hold ``FINAL.lock`` for the duration of a run.

    Raises
    ------
    OutputLockedError
        If another live process (on this host), or any process on another host, holds it.

    Notes
    -----
    A lock left by a process that no longer runs on this host (a crash, ``kill -9``) is stale:
    it is reported with a :class:`LazystitchWarning` and taken over.
    """
    lock = final.with_name(final.name + ".lock")
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            host, pid = holder.get("host"), holder.get("pid")
            if host == me["host"] and isinstance(pid, int) and not _alive(pid):
                warnings.warn(
                    f"removing a stale lock {lock} left by process {pid} on {host}, "
                    "which is no longer running",
                    LazystitchWarning,
                    stacklevel=3,
                )
                lock.unlink(missing_ok=True)
                continue
            raise OutputLockedError(
                f"{final} is being written by another run (process {pid} on host {host}, "
                f"lock {lock}); wait for it, or delete the lock if that run is gone"
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:  # pragma: no cover (someone re-created it between our unlink and open)
        raise OutputLockedError(f"{final} is locked by another run ({lock})")
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)
