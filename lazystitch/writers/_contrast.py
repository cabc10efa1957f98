"""Contrast windows of a finished mosaic, from the finest level small enough to read whole,
for the viewers' metadata (OME-Zarr's ``omero`` windows, the napari reader's contrast limits)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["contrast_level", "contrast_windows"]

SAMPLE_PIXELS = 1 << 22  # at most this many pixels per channel are read


def contrast_level(shapes: list[tuple[int, ...]], channels: bool) -> int:
    """The finest level with at most :data:`SAMPLE_PIXELS` pixels per channel (else the
    coarsest): coarser levels, block means, narrow the range of noisy data.

    Examples
    --------
    >>> contrast_level([(3, 8192, 8192), (3, 4096, 4096), (3, 2048, 2048)], True)
    2
    """
    for k, shape in enumerate(shapes):
        if math.prod(shape[1:] if channels else shape) <= SAMPLE_PIXELS:
            return k
    return len(shapes) - 1


def contrast_windows(level: Any, channels: bool, dtype: Any = None) -> list[tuple[float, float]]:
    """Per channel (the first axis, if ``channels``) the 0.1 and 99.9 percentiles of
    ``level`` (an array-like: h5py or zarr), read with a stride that keeps the sample to
    :data:`SAMPLE_PIXELS`. Zero pixels (outside every tile) are left out. ``dtype``: the
    pixel type the stored bits are read as (BigDataViewer's uint16 stored as int16).

    Examples
    --------
    >>> contrast_windows(np.arange(1, 1001, dtype=np.uint16).reshape(10, 100), False)
    [(2.0, 999.0)]
    """
    shape = tuple(level.shape)
    n = shape[0] if channels else 1
    per_channel = math.prod(shape[1:] if channels else shape)
    step = 1 if per_channel <= SAMPLE_PIXELS else math.isqrt(per_channel // SAMPLE_PIXELS) + 1
    out = []
    for c in range(n):
        lead = (c,) if channels else ()
        rest = len(shape) - len(lead)
        sel = lead + (slice(None),) * (rest - 2) + (slice(None, None, step),) * 2
        values = np.asarray(level[sel]).ravel()
        if dtype is not None:
            values = values.view(dtype)
        values = values[values != 0]
        if values.size == 0:
            out.append((0.0, 1.0))
            continue
        lo, hi = np.percentile(values, [0.1, 99.9], method="nearest")
        out.append((float(lo), float(max(hi, lo + 1e-9))))
    return out
