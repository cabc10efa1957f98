"""Where each tile lands in the mosaic, and which tiles each block of the mosaic reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lazystitch._typing import TileKey
from lazystitch.layout import Layout

__all__ = ["BlockIndex", "FusionPlan", "block_index", "plan_fusion"]


@dataclass(frozen=True)
class FusionPlan:
    """The tiles' placement in mosaic pixels, in blending order.

    Attributes
    ----------
    keys : tuple of (int, int)
        The tiles' (row, col), sorted: the order in which overlapping tiles are blended (which
        fixes float rounding and decides the ``first``/``last`` modes).
    positions : ndarray of int64, shape (n_tiles, 2)
        Each tile's top-left (y, x) in whole mosaic pixels (the floor of its position, shifted
        so the smallest is 0).
    fractions : ndarray of float64, shape (n_tiles, 2), or None
        The sub-pixel part of each position (interpolated by fusion); None when all are whole.
    tile_yx : (int, int)
    mosaic_yx : (int, int)
    """

    keys: tuple[TileKey, ...]
    positions: np.ndarray
    fractions: np.ndarray | None
    tile_yx: tuple[int, int]
    mosaic_yx: tuple[int, int]


def plan_fusion(layout: Layout) -> FusionPlan:
    """The placement of a layout's tiles. Any positions fuse: a tile's pixels go wherever its
    position puts them, whatever its grid neighbours do."""
    frac = layout.fractions
    return FusionPlan(
        keys=tuple(layout.keys),
        positions=np.asarray(layout.pixel_positions, dtype=np.int64),
        fractions=np.array(frac, dtype=np.float64) if np.any(frac > 0) else None,
        tile_yx=(int(layout.tile_yx[0]), int(layout.tile_yx[1])),
        mosaic_yx=(int(layout.mosaic_yx[0]), int(layout.mosaic_yx[1])),
    )


@dataclass(frozen=True)
class BlockIndex:
    """Which tiles overlap each block of a mosaic cut on a grid of Y and X edges.

    Block ``(i, j)`` covers ``[y_edges[i], y_edges[i+1]) x [x_edges[j], x_edges[j+1])``; the
    tiles overlapping it are ``tiles[starts[b]:starts[b+1]]`` with ``b = i * n_x + j``, indices
    into the plan's tiles in blending order.
    """

    y_edges: np.ndarray
    x_edges: np.ndarray
    starts: np.ndarray
    tiles: np.ndarray

    def at(self, i: int, j: int) -> np.ndarray:
        b = i * (len(self.x_edges) - 1) + j
        return self.tiles[self.starts[b] : self.starts[b + 1]]

    def bounds(self, i: int, j: int) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` of block ``(i, j)``."""
        ye, xe = self.y_edges, self.x_edges
        return int(ye[i]), int(ye[i + 1]), int(xe[j]), int(xe[j + 1])


def _spans(edges: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For intervals [lo, hi): the first block and one past the last block they touch."""
    n = len(edges) - 1
    first = np.clip(np.searchsorted(edges, lo, side="right") - 1, 0, n)
    stop = np.clip(np.searchsorted(edges, hi, side="left"), 0, n)
    return first, stop


def block_index(plan: FusionPlan, y_edges: np.ndarray, x_edges: np.ndarray) -> BlockIndex:
    """Index the tiles by the blocks they overlap (each tile's few blocks, not every pair)."""
    h, w = plan.tile_yx
    pos = plan.positions
    fy, sy = _spans(y_edges, pos[:, 0], pos[:, 0] + h)
    fx, sx = _spans(x_edges, pos[:, 1], pos[:, 1] + w)
    nx = len(x_edges) - 1
    blocks, tiles = [], []
    for t in range(len(pos)):
        bi, bj = np.meshgrid(np.arange(fy[t], sy[t]), np.arange(fx[t], sx[t]), indexing="ij")
        blocks.append((bi * nx + bj).ravel())
        tiles.append(np.full(bi.size, t, dtype=np.int64))
    n_blocks = (len(y_edges) - 1) * nx
    if blocks:
        b_all, t_all = np.concatenate(blocks), np.concatenate(tiles)
    else:
        b_all = t_all = np.zeros(0, dtype=np.int64)
    order = np.lexsort((t_all, b_all))  # by block, then by tile: blending order in each
    starts = np.zeros(n_blocks + 1, dtype=np.int64)
    np.cumsum(np.bincount(b_all, minlength=n_blocks), out=starts[1:])
    return BlockIndex(
        np.asarray(y_edges, dtype=np.int64),
        np.asarray(x_edges, dtype=np.int64),
        starts,
        t_all[order],
    )
