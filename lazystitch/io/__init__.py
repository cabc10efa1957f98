"""Readers: find tiles, check their headers, describe each as a :class:`TileSource`."""

from lazystitch.io._arrays import ArrayReader, from_arrays
from lazystitch.io._correct import Corrected, Correction, Profile, hook_name, import_hook
from lazystitch.io._flatfield import estimate_flatfield
from lazystitch.io._hdf5 import H5Reader, hdf5_source, split_container
from lazystitch.io._pattern import (
    ORDERS,
    acquisition_index,
    discover_keys,
    pattern_fields,
    tile_paths,
)
from lazystitch.io._region import read_tiff_region
from lazystitch.io._source import (
    AXES,
    Readers,
    RegionReader,
    TileSource,
    WindowReader,
    check_axes,
    region_reader,
)
from lazystitch.io._tiff import TiffHeader, TiffReader, read_tiff, tiff_header, tiff_source
from lazystitch.io._tiles import TileSet, open_tiles, open_tiles_pattern, tile_set
from lazystitch.io._zarr import ZarrReader, split_zarr, zarr_source

__all__ = [
    "AXES",
    "ORDERS",
    "ArrayReader",
    "Corrected",
    "Correction",
    "H5Reader",
    "Profile",
    "Readers",
    "RegionReader",
    "TiffHeader",
    "TiffReader",
    "TileSet",
    "TileSource",
    "WindowReader",
    "ZarrReader",
    "acquisition_index",
    "check_axes",
    "discover_keys",
    "estimate_flatfield",
    "from_arrays",
    "hdf5_source",
    "hook_name",
    "import_hook",
    "open_tiles",
    "open_tiles_pattern",
    "pattern_fields",
    "read_tiff",
    "read_tiff_region",
    "region_reader",
    "split_container",
    "split_zarr",
    "tiff_header",
    "tiff_source",
    "tile_paths",
    "tile_set",
    "zarr_source",
]
