"""Fusion: blend overlapping tiles into one lazy mosaic with ``map_overlap``."""

from lazystitch.fusion._fuse import fuse, fuse_region, resample_axis, tile_grid_array
from lazystitch.fusion._plan import FusionPlan, plan_fusion
from lazystitch.fusion._weights import BlendMode, edge_ramp

__all__ = [
    "BlendMode",
    "FusionPlan",
    "edge_ramp",
    "fuse",
    "fuse_region",
    "plan_fusion",
    "resample_axis",
    "tile_grid_array",
]
