"""lazystitch: stitch microscopy tiles into one chunked HDF5 mosaic, lazily, at any scale."""

from lazystitch._version import __version__
from lazystitch.api import LazyMosaic, load_layout_and_tiles, prepare, stitch
from lazystitch.config import StitchConfig, load_config
from lazystitch.fusion import BlendMode, fuse, plan_fusion
from lazystitch.io import TileSet, open_tiles, open_tiles_pattern
from lazystitch.layout import Layout, grid_layout, positions_from_csv
from lazystitch.writers import ChunkCodec, WriteResult, describe_output, write_hdf5

__all__ = [
    "BlendMode",
    "ChunkCodec",
    "Layout",
    "LazyMosaic",
    "StitchConfig",
    "TileSet",
    "WriteResult",
    "__version__",
    "describe_output",
    "fuse",
    "grid_layout",
    "load_config",
    "load_layout_and_tiles",
    "open_tiles",
    "open_tiles_pattern",
    "plan_fusion",
    "positions_from_csv",
    "prepare",
    "stitch",
    "write_hdf5",
]
