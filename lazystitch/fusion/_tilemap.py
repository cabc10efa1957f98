"""The tile map: which tile each pixel of the mosaic came from.

A label array cut on the same blocks as the mosaic. Label ``n`` is the plan's tile ``n - 1``
(its place in blending order, the order of the output's ``tile_grid``); 0 is a pixel no tile
covers. Where tiles overlap, the label is the tile the blend mode takes the pixel from, or
gives the most weight:

* ``linear``: the tile of largest weight (the product of the distances to its edges, as
  fusion weighs it); a tie goes to the tile earlier in blending order;
* ``average``, ``max``: every tile weighs the same there (``max`` picks by value, plane by
  plane), so the map shows the tile that ``linear`` would weigh most, the one whose edges
  are farthest: the tile the pixel belongs to, whatever the planes hold;
* ``first`` / ``last``: the first / last covering tile in blending order.

It depends on the positions alone: no tile is read.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from lazystitch.fusion._fuse import DEFAULT_BLOCK, FusedGraph, _edges
from lazystitch.fusion._plan import BlockIndex, FusionPlan, block_index
from lazystitch.fusion._weights import BlendMode, edge_ramp

__all__ = ["TileMap", "label_dtype", "tile_map_block", "tile_map_graph"]


@dataclass(frozen=True)
class TileMap:
    """A lazy tile map (``labels``, cut like the mosaic) and the tiles its labels name:
    label ``n`` is ``keys[n - 1]``, a tile's (row, col)."""

    labels: FusedGraph
    keys: tuple[tuple[int, int], ...]


def label_dtype(n_tiles: int) -> np.dtype:
    """The smallest unsigned integer type that holds labels 0..n_tiles.

    Examples
    --------
    >>> label_dtype(255), label_dtype(256), label_dtype(70_000)
    (dtype('uint8'), dtype('uint16'), dtype('uint32'))
    """
    return np.dtype(np.min_scalar_type(max(1, int(n_tiles))))


def tile_map_block(
    plan: FusionPlan,
    index: BlockIndex,
    blend: str,
    lead: int,
    dtype: np.dtype,
    block_id: tuple[int, ...] = (0, 0),
) -> np.ndarray:
    """Worker side: one block of the tile map, with ``lead`` leading axes of length 1.

    Each tile's part of the block is filled with its label, in blending order (``first``:
    in reverse), which is the answer wherever one tile covers a pixel, and for ``first`` and
    ``last`` everywhere. For the weighing modes the weights are then computed only where two
    tiles meet: on each pairwise intersection, every tile that touches it is weighed and the
    heaviest wins. A pixel in several intersections gets the same answer from each (all the
    tiles over it are weighed every time), so the work is the overlaps', not the tiles'.
    """
    mode = BlendMode(blend)
    i, j = block_id[-2], block_id[-1]
    y0, y1, x0, x1 = index.bounds(i, j)
    h, w = plan.tile_yx
    labels = np.zeros((y1 - y0, x1 - x0), dtype=dtype)
    rects: dict[int, tuple[int, int, int, int]] = {}  # each tile's part, in block pixels
    for t in sorted(int(t) for t in index.at(i, j)):
        py, px = (int(v) for v in plan.positions[t])
        r = (max(y0, py) - y0, min(y1, py + h) - y0, max(x0, px) - x0, min(x1, px + w) - x0)
        if r[0] < r[1] and r[2] < r[3]:
            rects[t] = r
    for t in reversed(rects) if mode is BlendMode.first else rects:
        ra, rb, ca, cb = rects[t]
        labels[ra:rb, ca:cb] = t + 1
    if mode in (BlendMode.first, BlendMode.last):
        return labels.reshape((1,) * lead + labels.shape)
    meets = {
        m for a, b in itertools.combinations(rects.values(), 2) if (m := _meet(a, b)) is not None
    }
    for m in meets:
        ra, rb, ca, cb = m
        best = np.zeros((rb - ra, cb - ca))
        winner = np.zeros(best.shape, dtype=dtype)
        for t, r in rects.items():  # in blending order; strictly more: a tie stays earlier
            if (s := _meet(r, m)) is None:
                continue
            py, px = (int(v) for v in plan.positions[t])
            wy = edge_ramp(h)[s[0] + y0 - py : s[1] + y0 - py]
            wx = edge_ramp(w)[s[2] + x0 - px : s[3] + x0 - px]
            weight = np.multiply.outer(wy, wx)
            sub = (slice(s[0] - ra, s[1] - ra), slice(s[2] - ca, s[3] - ca))
            more = weight > best[sub]
            np.copyto(best[sub], weight, where=more)
            np.copyto(winner[sub], t + 1, where=more)
        labels[ra:rb, ca:cb] = winner
    return labels.reshape((1,) * lead + labels.shape)


def _meet(
    a: tuple[int, int, int, int], b: tuple[int, int, int, int]
) -> tuple[int, int, int, int] | None:
    """The intersection of two rectangles ``(y0, y1, x0, x1)``, or None."""
    r = (max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3]))
    return r if r[0] < r[1] and r[2] < r[3] else None


def tile_map_graph(
    plan: FusionPlan,
    *,
    blend: BlendMode | str = BlendMode.linear,
    lead: int = 0,
    chunks: tuple[int, int] | None = None,
) -> TileMap:
    """The tile map of a fusion plan, on the blocks :func:`~lazystitch.fusion.fused_graph`
    cuts the mosaic into (same ``chunks``): shape ``(1,) * lead + mosaic_yx``, one task per
    block."""
    blend = BlendMode(blend)
    cy, cx = DEFAULT_BLOCK if chunks is None else (int(c) for c in chunks[-2:])
    mh, mw = plan.mosaic_yx
    index = block_index(plan, _edges(mh, cy), _edges(mw, cx))
    dtype = label_dtype(len(plan.keys))
    out_chunks = (
        *((1,) for _ in range(lead)),
        tuple(np.diff(index.y_edges).tolist()),
        tuple(np.diff(index.x_edges).tolist()),
    )
    token = tokenize(plan.keys, plan.positions, plan.tile_yx, blend.value, lead, cy, cx)
    shared = dask.delayed((plan, index), pure=True, name=f"tile-map-plan-{token}")
    name = f"tile-map-{token}"
    zeros = (0,) * lead
    layer: dict[Any, Any] = {
        (name, *zeros, i, j): (_block, shared.key, blend.value, lead, dtype, (*zeros, i, j))
        for i in range(len(out_chunks[-2]))
        for j in range(len(out_chunks[-1]))
    }
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[shared])
    keys = tuple((int(r), int(c)) for r, c in plan.keys)
    return TileMap(FusedGraph(name, graph, out_chunks, dtype), keys)


def _block(
    shared: tuple[FusionPlan, BlockIndex],
    blend: str,
    lead: int,
    dtype: np.dtype,
    block_id: tuple[int, ...],
) -> np.ndarray:
    plan, index = shared
    return tile_map_block(plan, index, blend, lead, dtype, block_id)
