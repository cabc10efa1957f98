"""What the benchmark scripts share: measuring a command as a user runs it, and recording it."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import psutil

__all__ = ["append_markdown", "machine", "position_errors", "run_measured"]


def position_errors(positions: Mapping, truth: Mapping, keys: Iterable) -> np.ndarray:
    """|position - truth| (px) of the tiles ``keys``, after removing their mean offset (a
    registration fixes positions up to a translation)."""
    keys = list(keys)
    d = np.array([positions[k] for k in keys], float) - np.array([truth[k] for k in keys], float)
    return np.hypot(*(d - d.mean(axis=0)).T)


def run_measured(cmd: list[str]) -> tuple[float, int, str]:
    """Run ``cmd``; return wall seconds, peak summed RSS (bytes) of its process tree, stdout.

    The RSS of the process and all its children (client, scheduler, nannies, workers) is
    sampled every 50 ms."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):  # the process may have just exited
            rss = 0
            for p in [ps, *ps.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a child may have just exited
                    rss += p.memory_info().rss
            peak = max(peak, rss)
        time.sleep(0.05)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{err[-2000:]}")
    return wall, peak, out


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{time.strftime('%Y-%m-%d')}; {os.cpu_count()} cores, {mem:.0f} GiB, "
        f"Python {platform.python_version()}"
    )


def append_markdown(
    path: Path | None,
    title: str,
    table: str,
    note: str = "",
    redact: Mapping[str, str] | None = None,
) -> None:
    """Print ``table``; with ``path``, append it under ``title``, the machine and the command
    line that made it (the script named from the repository's root; the value of each option
    in ``redact``, a path of this machine, replaced by what it stands for)."""
    print(table)
    if path is None:
        return
    argv = list(sys.argv[1:])
    for option, stands_for in (redact or {}).items():
        if option in argv[:-1]:
            argv[argv.index(option) + 1] = stands_for
    script = Path(sys.argv[0]).resolve()
    root = Path(__file__).resolve().parent.parent
    name = script.relative_to(root) if script.is_relative_to(root) else script
    cmd = " ".join(["python", str(name), *argv])
    with path.open("a") as fh:
        fh.write(f"\n### {title} ({machine()})\n\n`{cmd}`\n\n{table}\n")
        if note:
            fh.write(f"\n{note}\n")
