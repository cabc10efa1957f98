"""Readers: find tiles, check their headers, describe each as a :class:`TileSource`."""

from lazystitch.io._pattern import ORDERS, acquisition_index, pattern_fields, tile_paths
from lazystitch.io._region import read_tiff_region
from lazystitch.io._source import AXES, RegionReader, TileSource, WindowReader, check_axes
from lazystitch.io._tiff import TiffHeader, TiffReader, read_tiff, tiff_header, tiff_source
from lazystitch.io._tiles import TileSet, open_tiles, open_tiles_pattern, tile_set

__all__ = [
    "AXES",
    "ORDERS",
    "RegionReader",
    "TiffHeader",
    "TiffReader",
    "TileSet",
    "TileSource",
    "WindowReader",
    "acquisition_index",
    "check_axes",
    "open_tiles",
    "open_tiles_pattern",
    "pattern_fields",
    "read_tiff",
    "read_tiff_region",
    "tiff_header",
    "tiff_source",
    "tile_paths",
    "tile_set",
]
