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
}

__all__ = [
    "DEFAULT_BLOCK",
    "BlendMode",
    "BlockIndex",
    "FusedGraph",
    "FusionPlan",
    "block_index",
    "edge_ramp",
    "fuse",
    "fuse_block",
    "fused_graph",
    "plan_fusion",
    "resample_axis",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
