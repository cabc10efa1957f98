"""Tile positions: regular grids and explicit positions from a CSV."""

from lazystitch.layout._layout import (
    Layout,
    grid_keys,
    grid_layout,
    orient_positions,
    overlap_px,
    positions_from_csv,
    positions_layout,
    read_positions_csv,
)

__all__ = [
    "Layout",
    "grid_keys",
    "grid_layout",
    "orient_positions",
    "overlap_px",
    "positions_from_csv",
    "positions_layout",
    "read_positions_csv",
]
