"""Fusion: blend overlapping tiles into one lazy mosaic, block by block.

The blending modes load at once (the config names them); the rest, which needs dask.array,
when first used, so that commands that never fuse (``register``, ``info``) start faster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lazystitch.fusion._weights import BlendMode, edge_ramp

if TYPE_CHECKING:
    from lazystitch.fusion._fuse import (
        DEFAULT_BLOCK,
        FusedGraph,
        fuse,
        fuse_block,
        fused_graph,
        resample_axis,
    )
    from lazystitch.fusion._plan import BlockIndex, FusionPlan, block_index, plan_fusion
    from lazystitch.fusion._tilemap import TileMap, label_dtype, tile_map_graph

_LAZY = {
    "DEFAULT_BLOCK": "_fuse",
    "FusedGraph": "_fuse",
    "fuse": "_fuse",
    "fused_graph": "_fuse",
    "fuse_block": "_fuse",
    "resample_axis": "_fuse",
    "BlockIndex": "_plan",
    "FusionPlan": "_plan",
    "block_index": "_plan",
    "plan_fusion": "_plan",
    "label_dtype": "_tilemap",
    "TileMap": "_tilemap",
    "tile_map_graph": "_tilemap",
}

__all__ = [
    "DEFAULT_BLOCK",
    "BlendMode",
    "BlockIndex",
    "FusedGraph",
    "FusionPlan",
    "TileMap",
    "block_index",
    "edge_ramp",
    "fuse",
    "fuse_block",
    "fused_graph",
    "label_dtype",
    "plan_fusion",
    "resample_axis",
    "tile_map_graph",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
