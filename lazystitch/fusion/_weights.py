"""Blending weights and the blend modes' names."""

from __future__ import annotations

from enum import Enum
from functools import lru_cache

import numpy as np

__all__ = ["BlendMode", "edge_ramp"]


class BlendMode(str, Enum):
    """How overlapping tiles are combined.

    ``linear``: weighted by each pixel's distance to its tile's edge (a linear ramp across a
    two-tile overlap; weights sum to 1). ``average``: the plain mean. ``max``: the maximum.
    ``first`` / ``last``: the tile first / last in (row, col) order wins.
    """

    linear = "linear"
    average = "average"
    max = "max"
    first = "first"
    last = "last"


@lru_cache(maxsize=32)
def edge_ramp(n: int) -> np.ndarray:
    """Distance of each pixel of an ``n``-pixel axis to the nearer edge, counted from 1.

    The linear blend weight of a tile pixel (i, j) is ``edge_ramp(H)[i] * edge_ramp(W)[j]``.
    Where two tiles overlap by ``o`` px along one axis, the normalised weights form a linear
    ramp ``(k + 1) / (o + 1)`` across the overlap.

    Examples
    --------
    >>> edge_ramp(5).tolist()
    [1.0, 2.0, 3.0, 2.0, 1.0]
    """
    i = np.arange(n, dtype=np.float64)
    ramp = np.minimum(i + 1, n - i)
    ramp.setflags(write=False)
    return ramp
