"""glibc's heap, set for a job of many arrays of a few megabytes.

glibc serves a request above its mmap threshold (128 KiB at first) with a fresh ``mmap``,
and gives the top of its heap back to the OS whenever more than its trim threshold is free
there. Registration and fusion allocate and free thousands of strip- and tile-sized arrays;
with the defaults each one's pages fault in anew (measured in sys time: 6 s of a 20 s
``lazystitch register`` of 8x8 tiles of 1024^2). distributed's nanny makes it worse for its
workers: it sets ``MALLOC_TRIM_THRESHOLD_=65536``, which also stops glibc from raising its mmap
threshold as large arrays come and go.

Measured on that registration job (threaded, 2 threads, three settings alternating in one
session): glibc's defaults 7.2-9.0 s; the nanny's setting 9.5-9.9 s; arrays up to 16 MiB from
the heap and up to 64 MiB of free heap kept, 4.5-5.1 s. The kept memory is bounded (per heap
arena), so a job's memory still does not grow with the mosaic.
"""

from __future__ import annotations

import ctypes
import platform

__all__ = ["MALLOC_ENV", "tune_malloc"]

MMAP_THRESHOLD = 16 << 20
"""Arrays below this come from the heap, not from a fresh mmap."""

TRIM_THRESHOLD = 64 << 20
"""Free heap kept (per arena) before glibc gives memory back to the OS."""

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD, "MALLOC_TRIM_THRESHOLD_": TRIM_THRESHOLD}
"""The same setting for a process yet to start (worker processes, batch jobs)."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def tune_malloc() -> bool:
    """Apply the setting to this process; False where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
