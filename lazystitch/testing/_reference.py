"""A plain single-process NumPy stitch: the oracle the lazy, distributed one must equal."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lazystitch._typing import TileKey

__all__ = ["reference_stitch"]


def reference_stitch(
    tiles: dict[TileKey, np.ndarray],
    positions: dict[TileKey, tuple[float, float]],
    blend: str = "linear",
) -> np.ndarray:
    """Paste whole tiles into one in-memory mosaic, tile by tile in (row, col) order.

    Each tile sits at the floor of its position (shifted so the minimum is (0, 0)) and, where
    the position has a fraction, is first moved by it with bilinear interpolation
    (``scipy.ndimage.shift``, order 1, edge values repeated); uncovered pixels are 0; integer
    results are rounded to nearest. The linear weight of a tile pixel (i, j) is the product of
    its distances, counted from 1, to the nearer edge along Y and along X.

    Independent of lazystitch's fusion code (plain NumPy and SciPy), so that a bug the two
    shared could not hide.
    """
    keys = sorted(tiles)
    exact = {}
    for k in keys:  # whole pixel + fraction, as Layout does (near-whole values snapped)
        v = np.asarray(positions[k], dtype=np.float64)
        near = np.rint(v)
        exact[k] = np.where(np.abs(v - near) < 1e-6, near, v)
    pos = {k: (int(np.floor(v[0])), int(np.floor(v[1]))) for k, v in exact.items()}
    frac = {k: exact[k] - np.floor(exact[k]) for k in keys}
    y_min = min(p[0] for p in pos.values())
    x_min = min(p[1] for p in pos.values())
    pos = {k: (y - y_min, x - x_min) for k, (y, x) in pos.items()}
    first = tiles[keys[0]]
    *lead, h, w = first.shape
    mh = max(y for y, _ in pos.values()) + h
    mw = max(x for _, x in pos.values()) + w
    num = np.zeros((*lead, mh, mw), dtype=np.float64)
    den = np.zeros((mh, mw), dtype=np.float64)
    order = keys[::-1] if blend == "first" else keys
    for k in order:
        y, x = pos[k]
        tile = tiles[k]
        tile = tile.astype(np.float64)
        if frac[k][0] or frac[k][1]:  # sub-pixel: the tile moved by its fraction (bilinear)
            shift = (0.0,) * (tile.ndim - 2) + (float(frac[k][0]), float(frac[k][1]))
            tile = ndimage.shift(tile, shift, order=1, mode="nearest", prefilter=False)
        win = (..., slice(y, y + h), slice(x, x + w))
        if blend == "linear":
            wgt = np.multiply.outer(_to_edge(h), _to_edge(w))
            num[win] += wgt * tile
            den[y : y + h, x : x + w] += wgt
        elif blend == "average":
            num[win] += tile
            den[y : y + h, x : x + w] += 1
        elif blend == "max":
            seen = den[y : y + h, x : x + w] > 0
            num[win] = np.where(seen, np.maximum(num[win], tile), tile)
            den[y : y + h, x : x + w] = 1
        elif blend in ("first", "last"):
            num[win] = tile
            den[y : y + h, x : x + w] = 1
        else:
            raise ValueError(f"unknown blend {blend!r}")
    if blend in ("linear", "average"):
        num = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    if blend in ("max", "first", "last") and not any(f.any() for f in frac.values()):
        return num.astype(first.dtype)  # whole pixels: the tiles' own values
    dtype = first.dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        num = np.clip(np.rint(num), info.min, info.max)
    return num.astype(dtype)


def _to_edge(n: int) -> np.ndarray:
    """Each pixel's distance to the nearer end of an ``n``-pixel axis, counted from 1."""
    return np.array([min(i + 1, n - i) for i in range(n)], dtype=np.float64)
