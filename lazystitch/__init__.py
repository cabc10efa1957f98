"""lazystitch: stitch microscopy tiles into one chunked HDF5 mosaic, lazily, at any scale.

The public names are imported on first use (PEP 562), so that ``import lazystitch`` and the
command line start in milliseconds and a Ctrl-C during start-up is handled like any other.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lazystitch._version import __version__

if TYPE_CHECKING:
    from lazystitch.api import LazyMosaic, load_layout_and_tiles, prepare, stitch
    from lazystitch.config import StitchConfig, load_config
    from lazystitch.fusion import BlendMode, fuse, plan_fusion
    from lazystitch.io import TileSet, TileSource, from_arrays, open_tiles, open_tiles_pattern
    from lazystitch.layout import Layout, grid_layout, positions_from_csv
    from lazystitch.writers import ChunkCodec, WriteResult, describe_output, write_hdf5

_WHERE = {
    "lazystitch.api": ("LazyMosaic", "load_layout_and_tiles", "prepare", "stitch"),
    "lazystitch.config": ("StitchConfig", "load_config"),
    "lazystitch.fusion": ("BlendMode", "fuse", "plan_fusion"),
    "lazystitch.io": ("TileSet", "TileSource", "from_arrays", "open_tiles", "open_tiles_pattern"),
    "lazystitch.layout": ("Layout", "grid_layout", "positions_from_csv"),
    "lazystitch.writers": ("ChunkCodec", "WriteResult", "describe_output", "write_hdf5"),
}
_MODULE = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "BlendMode",
    "ChunkCodec",
    "Layout",
    "LazyMosaic",
    "StitchConfig",
    "TileSet",
    "TileSource",
    "WriteResult",
    "__version__",
    "describe_output",
    "from_arrays",
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
assert sorted([*_MODULE, "__version__"]) == __all__


def __getattr__(name: str) -> Any:
    if name in _MODULE:
        value = getattr(importlib.import_module(_MODULE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lazystitch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
