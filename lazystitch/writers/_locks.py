"""One run per output at a time: a lock file beside the output naming the host and pid."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lazystitch.errors import LazystitchWarning, OutputLockedError

__all__ = ["check_unlocked", "lock_path", "output_lock"]


def lock_path(final: Path) -> Path:
    return final.with_name(final.name + ".lock")


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


def _holder(lock: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the live holder's record, None) or (None, why the lock is stale); (None, None): free.

    A lock is written whole before it appears (a temporary file hard-linked into place), so an
    empty or unreadable one was not written by a run of this version: it is stale.
    """
    try:
        text = lock.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError):
        return None, "it cannot be read"
    try:
        holder = json.loads(text)
    except ValueError:
        holder = None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
        return None, "it is empty or not a lazystitch lock"
    if holder.get("host") == socket.gethostname() and not _alive(holder["pid"]):
        return None, f"process {holder['pid']} on {holder['host']} is no longer running"
    return holder, None


def _locked_error(final: Path, lock: Path, holder: dict[str, Any]) -> OutputLockedError:
    return OutputLockedError(
        f"{final} is being written by another run (process {holder.get('pid')} on host "
        f"{holder.get('host')}, lock {lock}); wait for it, or delete the lock if that run is gone"
    )


def check_unlocked(final: Path) -> None:
    """Raise :class:`OutputLockedError` if a live run holds ``final``'s lock (changes nothing)."""
    lock = lock_path(final)
    holder, _ = _holder(lock)
    if holder is not None:
        raise _locked_error(final, lock, holder)


def _create(lock: Path, record: dict[str, Any]) -> bool:
    """Create ``lock`` holding ``record``, whole or not at all; False if it exists."""
    tmp = lock.with_name(f"{lock.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, lock)
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: exclusive create instead
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
        return True
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def output_lock(final: Path) -> Iterator[Path]:
    """Hold ``FINAL.lock`` for the duration of a run.

    Raises
    ------
    OutputLockedError
        If another live process (on this host), or any process on another host, holds it.

    Notes
    -----
    A lock left by a process that no longer runs on this host (a crash, ``kill -9``), or one
    that is empty or unreadable, is stale: it is reported with a :class:`LazystitchWarning`
    and taken over.
    """
    lock = lock_path(final)
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    for _ in range(2):
        if _create(lock, me):
            break
        holder, stale = _holder(lock)
        if holder is not None:
            raise _locked_error(final, lock, holder)
        if stale is not None:
            warnings.warn(f"removing a stale lock {lock}: {stale}", LazystitchWarning, stacklevel=3)
            lock.unlink(missing_ok=True)
    else:  # pragma: no cover (someone re-created it between our unlink and create)
        raise OutputLockedError(f"{final} is locked by another run ({lock})")
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)
