"""The plain HDF5 format: ``/mosaic`` (or ``--dataset``) is level 0, as it always was, and the
pyramid's levels sit beside it as ``mosaic_level1``, ``mosaic_level2``, ... . A tile map
(``--tile-map``) is ``/tile_map``, with its levels ``tile_map_level1``, ... .

Level 0 records the levels in attributes: ``lazystitch_levels`` (dataset names, finest
first), ``lazystitch_level_factors`` (downsampling per level, Y and X) and ``pixel_size_um``
(Y, X; NaN when unknown). Any HDF5 reader keeps reading ``/mosaic`` as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lazystitch.writers._codec import ChunkCodec
from lazystitch.writers._format import Metadata
from lazystitch.writers._plan import TILE_MAP, ArraySpec

__all__ = ["TILE_MAP", "PlainHDF5", "level_name", "pixel_size_attr", "tile_map_attrs"]


def level_name(dataset: str, level: int) -> str:
    """``mosaic`` for level 0, ``mosaic_level1`` beside it for level 1, ..."""
    return dataset if level == 0 else f"{dataset}_level{level}"


def pixel_size_attr(pixel_size: float | None) -> np.ndarray:
    value = np.nan if pixel_size is None else float(pixel_size)
    return np.array([value, value], dtype=np.float64)


def tile_map_attrs(arrays: list[ArraySpec], meta: Metadata) -> dict[str, Any]:
    """Attributes of the tile map's level 0 in an HDF5 output (``arrays``: its levels):
    its levels as the mosaic records its own, and ``lazystitch_tile_keys``, the (row, col)
    of the tile each label names (label n is row n - 1; 0 is no tile)."""
    return {
        "lazystitch_role": "tile_map",
        "lazystitch_levels": np.array([a.name for a in arrays], dtype=object),
        "lazystitch_level_factors": np.array(
            [[2**a.level, 2**a.level] for a in arrays], dtype=np.int64
        ),
        "lazystitch_tile_keys": np.array(meta.tiles or (), dtype=np.int64).reshape(-1, 2),
        "pixel_size_um": pixel_size_attr(meta.pixel_size),
    }


class PlainHDF5:
    name = "hdf5"
    container = "hdf5"

    def data_path(self, out: Path) -> Path:
        return out

    def companions(self, out: Path) -> list[Path]:
        return []

    def check(
        self, shape: tuple[int, ...], dtype: np.dtype, codec: ChunkCodec, channels: int = 0
    ) -> None:
        return None

    def arrays(
        self,
        dataset: str,
        shapes: list[tuple[int, ...]],
        dtype: np.dtype,
        chunks: list[tuple[int, ...]],
        channels: int = 0,
    ) -> list[ArraySpec]:
        return [  # channels lead the one dataset: (C, Y, X)
            ArraySpec(level_name(dataset, k), s, str(np.dtype(dtype)), c, k)
            for k, (s, c) in enumerate(zip(shapes, chunks, strict=True))
        ]

    def prepare(self, file: h5py.File, arrays: list[ArraySpec], meta: Metadata) -> None:
        return None

    def level_attrs(self, arrays: list[ArraySpec], meta: Metadata) -> dict[str, Any]:
        names = {"channels": np.array(meta.channels, dtype=object)} if meta.channels else {}
        return {
            **names,
            **meta.attrs,
            "lazystitch_levels": np.array([a.name for a in arrays], dtype=object),
            "lazystitch_level_factors": np.array(
                [[2**a.level, 2**a.level] for a in arrays], dtype=np.int64
            ),
            "pixel_size_um": pixel_size_attr(meta.pixel_size),
        }

    def write_companions(self, out: Path, arrays: list[ArraySpec], meta: Metadata) -> None:
        return None

    def tile_map_name(self, level: int) -> str:
        return level_name(TILE_MAP, level)
