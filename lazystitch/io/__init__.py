"""Readers: find tiles, check their headers, expose them as lazy dask arrays."""

from lazystitch.io._pattern import ORDERS, acquisition_index, pattern_fields, tile_paths
from lazystitch.io._region import RegionReader, read_tiff_region
from lazystitch.io._tiff import TiffHeader, read_tiff, tiff_header
from lazystitch.io._tiles import TileSet, open_tiles, open_tiles_pattern

__all__ = [
    "ORDERS",
    "RegionReader",
    "TiffHeader",
    "TileSet",
    "acquisition_index",
    "open_tiles",
    "open_tiles_pattern",
    "pattern_fields",
    "read_tiff",
    "read_tiff_region",
    "tiff_header",
    "tile_paths",
]
