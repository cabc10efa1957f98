"""What the benchmark scripts share: measuring a command as a user runs it, and recording it."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

__all__ = ["append_markdown", "machine", "run_measured"]


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


def append_markdown(path: Path | None, title: str, table: str, note: str = "") -> None:
    """Print ``table``; with ``path``, append it under ``title``, the machine and the command
    line that made it."""
    print(table)
    if path is None:
        return
    cmd = " ".join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    with path.open("a") as fh:
        fh.write(f"\n### {title} ({machine()})\n\n`{cmd}`\n\n{table}\n")
        if note:
            fh.write(f"\n{note}\n")
