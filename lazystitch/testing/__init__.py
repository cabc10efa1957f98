"""Synthetic tile sets with known positions, a NumPy reference stitch (the test oracle), and
the conformance check every tile reader passes."""

from lazystitch.testing._conformance import check_tile_set
from lazystitch.testing._reference import reference_stitch
from lazystitch.testing._registration import RegistrationTiles, make_registration_tiles
from lazystitch.testing._synthetic import (
    SyntheticTiles,
    cut_tiles,
    make_tiles,
    specimen_image,
    write_positions_csv,
)

__all__ = [
    "RegistrationTiles",
    "SyntheticTiles",
    "check_tile_set",
    "cut_tiles",
    "make_registration_tiles",
    "make_tiles",
    "reference_stitch",
    "specimen_image",
    "write_positions_csv",
]
