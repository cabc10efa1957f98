"""Synthetic tile sets with known positions, and a NumPy reference stitch (the test oracle)."""

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
    "cut_tiles",
    "make_registration_tiles",
    "make_tiles",
    "reference_stitch",
    "specimen_image",
    "write_positions_csv",
]
