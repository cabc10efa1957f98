"""A plain single-process NumPy stitch: the oracle the lazy, distributed one must equal."""

from __future__ import annotations

import numpy as np

from lazystitch._typing import TileKey
from lazystitch.fusion import edge_ramp

__all__ = ["reference_stitch"]


def reference_stitch(
    tiles: dict[TileKey, np.ndarray],
    positions: dict[TileKey, tuple[float, float]],
    blend: str = "linear",
) -> np.ndarray:
    """Paste whole tiles into one in-memory mosaic, tile by tile in (row, col) order.

    Positions are rounded to whole pixels and shifted so the minimum is (0, 0); uncovered pixels
    are 0; integer results are rounded to nearest. The linear weight of a tile pixel is
    ``edge_ramp(H)[i] * edge_ramp(W)[j]``.
    """
    keys = sorted(tiles)
    pos = {k: (int(np.rint(positions[k][0])), int(np.rint(positions[k][1]))) for k in keys}
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
        tile = tiles[k].astype(np.float64)
        win = (..., slice(y, y + h), slice(x, x + w))
        if blend == "linear":
            wgt = np.multiply.outer(edge_ramp(h), edge_ramp(w))
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
    dtype = first.dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        num = np.clip(np.rint(num), info.min, info.max)
    return num.astype(dtype)
