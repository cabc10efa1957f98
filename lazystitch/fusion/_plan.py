"""Who owns which part of the mosaic, and how much of its neighbours each tile must see."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lazystitch.errors import LayoutError
from lazystitch.layout import Layout

__all__ = ["FusionPlan", "plan_fusion"]


@dataclass(frozen=True)
class FusionPlan:
    """The output partition used by fusion.

    The tiles are arranged on a compact grid (the distinct rows and columns that have tiles).
    Grid cell (i, j) owns the mosaic region ``[y_bounds[i], y_bounds[i+1]) x
    [x_bounds[j], x_bounds[j+1])`` and computes it from its own tile and the edges of its eight
    neighbours, ``depth`` px deep along (Y, X).

    Attributes
    ----------
    grid_shape : (int, int)
    present : ndarray of bool, shape grid_shape
        Whether a tile exists in each grid cell.
    positions : ndarray of int64, shape grid_shape + (2,)
        Each present tile's top-left (y, x) in mosaic pixels (0 where absent).
    y_bounds, x_bounds : ndarray of int64
        Region boundaries; ``y_bounds[0] == 0`` and ``y_bounds[-1]`` is the mosaic height.
    depth : (int, int)
        Halo each block needs from its neighbours along Y and X (one more pixel along an axis
        where a tile sits between pixels: interpolation reads the pixel before).
    tile_yx : (int, int)
    fractions : ndarray of float64, shape grid_shape + (2,), or None
        Sub-pixel part of each tile's position; None when every position is whole.
    """

    grid_shape: tuple[int, int]
    present: np.ndarray
    positions: np.ndarray
    y_bounds: np.ndarray
    x_bounds: np.ndarray
    depth: tuple[int, int]
    tile_yx: tuple[int, int]
    fractions: np.ndarray | None = None
    """Sub-pixel part (y, x) of each cell's position, shape grid_shape + (2,); None if whole."""

    @property
    def mosaic_yx(self) -> tuple[int, int]:
        return int(self.y_bounds[-1]), int(self.x_bounds[-1])

    @property
    def region_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(np.diff(self.y_bounds).tolist()), tuple(np.diff(self.x_bounds).tolist())


def _compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    uniq = np.unique(labels)
    return np.searchsorted(uniq, labels), len(uniq)


def _bounds(index: np.ndarray, start: np.ndarray, size: int, n: int, total: int) -> np.ndarray:
    """Boundaries between consecutive grid rows (or cols): the middle of their mean overlap."""
    bounds = np.zeros(n + 1, dtype=np.int64)
    bounds[n] = total
    mean_start = np.array([start[index == k].mean() for k in range(n)])
    for k in range(1, n):
        prev_end = mean_start[k - 1] + size
        bounds[k] = int(np.floor((prev_end + mean_start[k]) / 2))
    return bounds


def _axis_depth(
    index: np.ndarray, start: np.ndarray, size: int, bounds: np.ndarray, axis: str
) -> int:
    """Halo depth needed along one axis; raise if a tile reaches past its neighbours' regions."""
    n = len(bounds) - 1
    end = start + size
    # regions each tile touches: first and last region index
    first = np.searchsorted(bounds, start, side="right") - 1
    last = np.searchsorted(bounds, end, side="left") - 1
    first = np.clip(first, 0, n - 1)
    last = np.clip(last, 0, n - 1)
    bad = (first < index - 1) | (last > index + 1)
    if bad.any():
        k = int(np.argmax(bad))
        raise LayoutError(
            f"a tile in grid {axis} {int(index[k])} (at {axis.lower()}={int(start[k])}) reaches "
            f"past the regions of its neighbouring {axis}s: positions deviate from a grid by "
            f"more than this design supports (at most about one tile step, and never beyond "
            f"the next row/column); check the positions file"
        )
    need_lo = np.where(first < index, bounds[np.minimum(index, n)] - start, 0)
    need_hi = np.where(last > index, end - bounds[np.minimum(index + 1, n)], 0)
    depth = int(max(need_lo.max(initial=0), need_hi.max(initial=0)))
    if depth > size:
        raise LayoutError(
            f"tiles overlap their neighbours along {axis} by up to {depth} px, more than the tile "
            f"size ({size} px); the positions are not a grid this design can fuse"
        )
    return depth


def plan_fusion(layout: Layout) -> FusionPlan:
    """Partition the mosaic among the grid cells and work out the halo depth.

    Raises
    ------
    LayoutError
        If tiles deviate from the grid so far that a tile would contribute to a region that is
        not owned by itself or one of its eight grid neighbours, or regions would be empty.
    """
    keys = np.array(layout.keys, dtype=np.int64).reshape(-1, 2)
    pos = layout.pixel_positions
    h, w = layout.tile_yx
    gi, n_rows = _compact(keys[:, 0])
    gj, n_cols = _compact(keys[:, 1])
    mh, mw = layout.mosaic_yx
    y_bounds = _bounds(gi, pos[:, 0], h, n_rows, mh)
    x_bounds = _bounds(gj, pos[:, 1], w, n_cols, mw)
    for bounds, axis in ((y_bounds, "row"), (x_bounds, "column")):
        if np.any(np.diff(bounds) <= 0):
            k = int(np.argmax(np.diff(bounds) <= 0))
            raise LayoutError(
                f"grid {axis}s {k - 1} and {k} overlap so much (or are out of order) that the "
                f"{axis} {k} owns no part of the mosaic; check the positions and the row/col "
                "labels"
            )
    dy = _axis_depth(gi, pos[:, 0], h, y_bounds, "Row")
    dx = _axis_depth(gj, pos[:, 1], w, x_bounds, "Column")
    present = np.zeros((n_rows, n_cols), dtype=bool)
    present[gi, gj] = True
    positions = np.zeros((n_rows, n_cols, 2), dtype=np.int64)
    positions[gi, gj] = pos
    frac = layout.fractions
    fractions = None
    if np.any(frac > 0):
        fractions = np.zeros((n_rows, n_cols, 2))
        fractions[gi, gj] = frac
        dy += int(np.any(frac[:, 0] > 0))
        dx += int(np.any(frac[:, 1] > 0))
        if dy > h or dx > w:
            raise LayoutError("tiles overlap their neighbours by (almost) a whole tile")
    return FusionPlan(
        grid_shape=(n_rows, n_cols),
        present=present,
        positions=positions,
        y_bounds=y_bounds,
        x_bounds=x_bounds,
        depth=(dy, dx),
        tile_yx=(h, w),
        fractions=fractions,
    )
