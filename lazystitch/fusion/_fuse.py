"""Fusion: the tile grid through ``dask.array.map_overlap`` into one lazy mosaic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from lazystitch.fusion._plan import FusionPlan, plan_fusion
from lazystitch.fusion._weights import BlendMode, edge_ramp
from lazystitch.io import TileSet
from lazystitch.layout import Layout

__all__ = ["fuse", "fuse_region", "resample_axis", "tile_grid_array"]

_SUMMING = (BlendMode.linear, BlendMode.average)


def tile_grid_array(tiles: TileSet, layout: Layout, plan: FusionPlan) -> da.Array:
    """All tiles as one dask array whose blocks are the tiles in (compact) grid order.

    Grid cells without a tile are zero blocks. Shape ``(..., rows * H, cols * W)``. The reads
    form one graph layer (not one layer per tile, as ``da.block`` of ``from_delayed`` arrays
    would give): optimising and culling a graph of 10,000 tiles then stays linear.
    """
    rows = sorted({r for r, _ in layout.keys})
    cols = sorted({c for _, c in layout.keys})
    present = set(layout.keys)
    lead = (0,) * (len(tiles.shape) - 2)
    name = "tiles-" + tokenize(tiles.fingerprint(), rows, cols, sorted(present), tiles.shape)
    dsk: dict[Any, Any] = {
        (name, *lead, i, j): (
            tiles.read_task((r, c)) if (r, c) in present else (np.zeros, tiles.shape, tiles.dtype)
        )
        for i, r in enumerate(rows)
        for j, c in enumerate(cols)
    }
    chunks = (
        *((s,) for s in tiles.shape[:-2]),
        (tiles.shape[-2],) * len(rows),
        (tiles.shape[-1],) * len(cols),
    )
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[])
    return da.Array(graph, name, chunks, dtype=tiles.dtype)


def _piece(a: int, depth: int, size: int) -> tuple[int, int, int]:
    """For a neighbour at grid offset ``a`` in {-1, 0, 1}: the tile-coordinate range the
    extended block holds of it, and the offset from tile to extended-block coordinates."""
    if a < 0:
        return size - depth, size, depth - size
    if a == 0:
        return 0, size, depth
    return 0, depth, depth + size


STRIP_PX = 1 << 19
"""Pixels per row strip in :func:`fuse_region`: bounds its float64 temporaries (~4 MB each)."""


def fuse_region(
    ext: np.ndarray,
    plan: FusionPlan,
    blend: BlendMode | str,
    block_id: tuple[int, ...],
) -> np.ndarray:
    """Compute the mosaic region owned by one grid cell from its extended block.

    Parameters
    ----------
    ext : ndarray of shape (..., H + 2*dy, W + 2*dx)
        The cell's tile with ``plan.depth`` px of each neighbour around it (zeros outside the
        grid), as ``map_overlap`` hands it over.
    plan : FusionPlan
    blend : {"linear", "average", "max", "first", "last"}
    block_id : tuple of int
        The block's index; the last two entries are the grid cell (i, j).

    Returns
    -------
    ndarray of shape (..., region height, region width), the tiles' dtype

    Notes
    -----
    Pixels that only the cell's own tile covers are copied from it (every blend mode gives the
    tile's value there, bit for bit); the borders where tiles overlap are blended in row strips,
    so temporaries stay small whatever the tile size. Every operation is per pixel, so neither
    changes the result.
    """
    blend = BlendMode(blend)
    i, j = block_id[-2], block_id[-1]
    y0, y1 = int(plan.y_bounds[i]), int(plan.y_bounds[i + 1])
    x0, x1 = int(plan.x_bounds[j]), int(plan.x_bounds[j + 1])
    out = np.empty((*ext.shape[:-2], y1 - y0, x1 - x0), dtype=ext.dtype)
    inner = _own_only(plan, i, j, y0, y1, x0, x1)
    if inner is None:
        windows = [(y0, y1, x0, x1)]
    else:
        iy0, iy1, ix0, ix1 = inner
        (dy, dx), (py, px) = plan.depth, (int(v) for v in plan.positions[i, j])
        out[..., iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = ext[
            ..., iy0 - py + dy : iy1 - py + dy, ix0 - px + dx : ix1 - px + dx
        ]
        windows = [(y0, iy0, x0, x1), (iy1, y1, x0, x1), (iy0, iy1, x0, ix0), (iy0, iy1, ix1, x1)]
    lead = int(np.prod(ext.shape[:-2], dtype=np.int64))
    for wy0, wy1, wx0, wx1 in windows:
        if wy0 >= wy1 or wx0 >= wx1:
            continue
        step = max(1, STRIP_PX // max(1, (wx1 - wx0) * lead))
        for s0 in range(wy0, wy1, step):
            s1 = min(s0 + step, wy1)
            out[..., s0 - y0 : s1 - y0, wx0 - x0 : wx1 - x0] = _fuse_window(
                ext, plan, blend, i, j, s0, s1, wx0, wx1
            )
    return out


def _neighbours(
    plan: FusionPlan, i: int, j: int, *, centre: bool = False
) -> Iterator[tuple[int, int, int, int, int, int]]:
    """``(a, b, ti, tj, y, x)`` for each tile present in the 3x3 grid neighbourhood of (i, j)
    (the cell itself only with ``centre``), in (row, col) order, which fixes blending order."""
    n_rows, n_cols = plan.grid_shape
    for a in (-1, 0, 1):
        for b in (-1, 0, 1):
            ti, tj = i + a, j + b
            if (a, b) == (0, 0) and not centre:
                continue
            if 0 <= ti < n_rows and 0 <= tj < n_cols and plan.present[ti, tj]:
                y, x = (int(v) for v in plan.positions[ti, tj])
                yield a, b, ti, tj, y, x


def _own_only(
    plan: FusionPlan, i: int, j: int, y0: int, y1: int, x0: int, x1: int
) -> tuple[int, int, int, int] | None:
    """A rectangle of the region that cell (i, j)'s tile covers and no neighbour does."""
    if not plan.present[i, j] or _fraction(plan, i, j) != (0.0, 0.0):
        return None
    (h, w), (py, px) = plan.tile_yx, (int(v) for v in plan.positions[i, j])
    ey0, ey1, ex0, ex1 = max(y0, py), min(y1, py + h), max(x0, px), min(x1, px + w)
    for a, b, _, _, ny, nx in _neighbours(plan, i, j):
        # drop the rows (columns) that a neighbour above/below (left/right) may cover
        if a < 0:
            ey0 = max(ey0, ny + h)
        elif a > 0:
            ey1 = min(ey1, ny)
        if b < 0:
            ex0 = max(ex0, nx + w)
        elif b > 0:
            ex1 = min(ex1, nx)
    return (ey0, ey1, ex0, ex1) if ey0 < ey1 and ex0 < ex1 else None


def _fuse_window(
    ext: np.ndarray,
    plan: FusionPlan,
    blend: BlendMode,
    i: int,
    j: int,
    y0: int,
    y1: int,
    x0: int,
    x1: int,
) -> np.ndarray:
    """Blend the mosaic window [y0, y1) x [x0, x1) of cell (i, j) from its extended block."""
    (h, w), (dy, dx) = plan.tile_yx, plan.depth
    out_shape = (*ext.shape[:-2], y1 - y0, x1 - x0)
    # blending sums in float64; the selecting modes keep the tiles' dtype unless interpolating
    acc_dtype = np.float64 if blend in _SUMMING or plan.fractions is not None else ext.dtype
    acc = np.zeros(out_shape, dtype=acc_dtype)
    weight = np.zeros(out_shape[-2:], dtype=np.float64)  # sum of weights, or coverage count
    for a, b, ti, tj, py, px in _neighbours(plan, i, j, centre=True):
        # the tile's intersection with the window, in tile coordinates
        r0, r1 = max(y0, py) - py, min(y1, py + h) - py
        c0, c1 = max(x0, px) - px, min(x1, px + w) - px
        if r0 >= r1 or c0 >= c1:
            continue
        lo_r, hi_r, off_r = _piece(a, dy, h)
        lo_c, hi_c, off_c = _piece(b, dx, w)
        if r0 < lo_r or r1 > hi_r or c0 < lo_c or c1 > hi_c:  # plan_fusion prevents this
            raise AssertionError(f"tile at grid ({ti}, {tj}) is outside the halo of ({i}, {j})")
        fy, fx = _fraction(plan, ti, tj)
        vals = _sample(ext, (r0, r1, off_r, fy), (c0, c1, off_c, fx))
        sl = (..., slice(py + r0 - y0, py + r1 - y0), slice(px + c0 - x0, px + c1 - x0))
        _accumulate(blend, acc, weight, sl, vals, edge_ramp(h)[r0:r1], edge_ramp(w)[c0:c1])
    return _finish(blend, acc, weight, ext.dtype)


def _fraction(plan: FusionPlan, i: int, j: int) -> tuple[float, float]:
    if plan.fractions is None:
        return (0.0, 0.0)
    return float(plan.fractions[i, j, 0]), float(plan.fractions[i, j, 1])


def resample_axis(v: np.ndarray, frac: float, axis: int, first: bool) -> np.ndarray:
    """Values of a tile moved by ``frac`` (0 <= frac < 1) px along ``axis``: pixel i takes
    ``(1 - frac) * v[i] + frac * v[i - 1]`` (bilinear). ``v`` holds the pixel before the wanted
    range as its first element, unless the range starts at the tile's edge (``first``), where
    the edge value stands in for it.

    Shared by fusion and :func:`lazystitch.testing.reference_stitch`, so both interpolate alike.
    """
    if first:
        edge = np.take(v, [0], axis=axis)
        v = np.concatenate([edge, v], axis=axis)
    n = v.shape[axis]
    cur = np.take(v, np.arange(1, n), axis=axis).astype(np.float64)
    prev = np.take(v, np.arange(0, n - 1), axis=axis).astype(np.float64)
    return (1.0 - frac) * cur + frac * prev


def _sample(
    ext: np.ndarray, rows: tuple[int, int, int, float], cols: tuple[int, int, int, float]
) -> np.ndarray:
    """Tile rows [r0, r1) x cols [c0, c1) of a tile held in ``ext`` at offsets (off_r, off_c),
    moved by its sub-pixel fractions (fy, fx)."""
    (r0, r1, off_r, fy), (c0, c1, off_c, fx) = rows, cols
    if fy == 0 and fx == 0:
        return ext[..., r0 + off_r : r1 + off_r, c0 + off_c : c1 + off_c]
    lo_r = r0 if fy == 0 else max(r0 - 1, 0)
    lo_c = c0 if fx == 0 else max(c0 - 1, 0)
    v = ext[..., lo_r + off_r : r1 + off_r, lo_c + off_c : c1 + off_c]
    if fy:
        v = resample_axis(v, fy, v.ndim - 2, first=r0 == 0)
    if fx:
        v = resample_axis(v, fx, v.ndim - 1, first=c0 == 0)
    return v


def _accumulate(
    blend: BlendMode,
    acc: np.ndarray,
    weight: np.ndarray,
    sl: tuple,
    vals: np.ndarray,
    ramp_y: np.ndarray,
    ramp_x: np.ndarray,
) -> None:
    """Add one tile's pixels ``vals`` into the region accumulators at ``sl``.

    Shared by the block function and :func:`lazystitch.testing.reference_stitch` so both define
    blending identically; the order of calls (tiles in (row, col) order) fixes float rounding.
    """
    wsl = sl[-2:]
    if blend is BlendMode.linear:
        wgt = np.multiply.outer(ramp_y, ramp_x)
        acc[sl] += wgt * vals
        weight[wsl] += wgt
    elif blend is BlendMode.average:
        acc[sl] += vals
        weight[wsl] += 1.0
    elif blend is BlendMode.max:
        covered = weight[wsl] > 0
        acc[sl] = np.where(covered, np.maximum(acc[sl], vals), vals)
        weight[wsl] = 1.0
    elif blend is BlendMode.first:
        covered = weight[wsl] > 0
        acc[sl] = np.where(covered, acc[sl], vals)
        weight[wsl] = 1.0
    else:  # last
        acc[sl] = vals
        weight[wsl] = 1.0


def _finish(blend: BlendMode, acc: np.ndarray, weight: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if blend not in _SUMMING and acc.dtype == dtype:
        return acc  # a selecting mode on whole pixels: already the tiles' values
    if blend in _SUMMING:
        np.divide(acc, weight, out=acc, where=weight > 0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        np.rint(acc, out=acc)
        np.clip(acc, info.min, info.max, out=acc)
    return acc.astype(dtype)


def fuse(
    tiles: TileSet,
    layout: Layout,
    *,
    blend: BlendMode | str = BlendMode.linear,
    plan: FusionPlan | None = None,
) -> da.Array:
    """Fuse tiles into one lazy mosaic.

    Parameters
    ----------
    tiles : TileSet
        Checked tiles, shape ``(..., H, W)``.
    layout : Layout
        Tile positions; every key of ``layout`` must be in ``tiles``.
    blend : {"linear", "average", "max", "first", "last"}
        How overlaps are combined (see :class:`BlendMode`).
    plan : FusionPlan, optional
        From :func:`plan_fusion`; computed from ``layout`` when omitted.

    Returns
    -------
    dask.array.Array of shape (..., mosaic height, mosaic width)
        Chunked by the regions each grid cell owns; nothing is computed. Pixels no tile covers
        are 0. Integer results are rounded to nearest.

    Raises
    ------
    LayoutError
        If the positions deviate from a grid more than fusion supports.
    """
    blend = BlendMode(blend)
    missing = [k for k in layout.keys if k not in tiles.headers]
    if missing:
        raise KeyError(f"the layout names tiles that were not opened: {missing[:5]}")
    if tuple(tiles.tile_yx) != tuple(layout.tile_yx):
        raise ValueError(f"tiles are {tiles.tile_yx} px but the layout says {layout.tile_yx}")
    plan = plan_fusion(layout) if plan is None else plan
    grid = tile_grid_array(tiles, layout, plan)
    lead = len(tiles.shape) - 2
    depth = dict.fromkeys(range(lead), 0) | {lead: plan.depth[0], lead + 1: plan.depth[1]}
    out_chunks = tuple((int(s),) for s in tiles.shape[:-2]) + plan.region_chunks
    plan_key = dask.delayed(plan, pure=True)
    return da.map_overlap(
        fuse_region,
        grid,
        depth=depth,
        boundary=0,
        trim=False,
        chunks=out_chunks,
        dtype=tiles.dtype,
        meta=np.empty((0,) * len(tiles.shape), dtype=tiles.dtype),
        plan=plan_key,
        blend=blend.value,
        name=f"fuse-{tokenize(grid.name, plan, blend.value)}",
    )
