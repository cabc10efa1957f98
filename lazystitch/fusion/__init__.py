"""Fusion: blend overlapping tiles into one lazy mosaic, block by block."""

from lazystitch.fusion._fuse import DEFAULT_BLOCK, fuse, fuse_block, resample_axis
from lazystitch.fusion._plan import BlockIndex, FusionPlan, block_index, plan_fusion
from lazystitch.fusion._weights import BlendMode, edge_ramp

__all__ = [
    "DEFAULT_BLOCK",
    "BlendMode",
    "BlockIndex",
    "FusionPlan",
    "block_index",
    "edge_ramp",
    "fuse",
    "fuse_block",
    "plan_fusion",
    "resample_axis",
]
