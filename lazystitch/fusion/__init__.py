"""Fusion: blend overlapping tiles into one lazy mosaic with ``map_overlap``."""

from lazystitch.fusion._fuse import fuse, fuse_region, tile_grid_array
from lazystitch.fusion._plan import FusionPlan, plan_fusion
from lazystitch.fusion._weights import BlendMode, edge_ramp

__all__ = [
    "BlendMode",
    "FusionPlan",
    "edge_ramp",
    "fuse",
    "fuse_region",
    "plan_fusion",
    "tile_grid_array",
]
