"""What a format supplies to the writer core: its layout, its stored dtype and its metadata.

Everything else (the tasks, committing chunks durably, the journal, resume, shards, the
atomic finish) is the core's and is the same for every format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from lazystitch.writers._codec import ChunkCodec
from lazystitch.writers._plan import ArraySpec

__all__ = ["Format", "HDF5Format", "Metadata"]


@dataclass(frozen=True)
class Metadata:
    """What every format records about the mosaic besides its pixels."""

    pixel_size: float | None  # µm per pixel (Y and X); None: unknown
    attrs: dict[str, Any]  # lazystitch's own attributes (tiles, positions, config)
    dtype: str  # the mosaic's pixel type (a format may store it as another, bit for bit)
    channels: tuple[str, ...] | None = None  # the first axis's channel names, if it is one
    axes: str | None = None  # the mosaic's axis names, e.g. "cyx" (None: from its shape)
    tiles: tuple[tuple[int, int], ...] | None = None  # the tile map's labels: n is tiles[n-1]


class Format(Protocol):
    """A file format the core writes into: an HDF5 file (``container`` "hdf5") or a Zarr
    folder (``container`` "zarr", see ``_format_omezarr.OmeZarr``)."""

    name: str
    container: str

    def data_path(self, out: Path) -> Path:
        """The HDF5 file that holds the chunks, for the output path the user named."""
        ...

    def companions(self, out: Path) -> list[Path]:
        """Files written beside the data file once it is complete (e.g. an XML)."""
        ...

    def check(
        self, shape: tuple[int, ...], dtype: np.dtype, codec: ChunkCodec, channels: int = 0
    ) -> None:
        """Refuse what the format cannot hold, naming why (``channels``: the size of the
        mosaic's leading channel axis, 0 if it has none)."""
        ...

    def arrays(
        self,
        dataset: str,
        shapes: list[tuple[int, ...]],
        dtype: np.dtype,
        chunks: list[tuple[int, ...]],
        channels: int = 0,
    ) -> list[ArraySpec]:
        """The run's arrays: one per pyramid level, where and how the file stores each."""
        ...

    def write_companions(self, out: Path, arrays: list[ArraySpec], meta: Metadata) -> None:
        """Write the companion files (atomically); called after the data file is in place."""
        ...

    def tile_map_name(self, level: int) -> str:
        """Where the tile map's level ``level`` is stored (``--tile-map``)."""
        ...


class HDF5Format(Format, Protocol):
    """A format whose data file is one HDF5 file (plain HDF5, BigDataViewer)."""

    def prepare(self, file: h5py.File, arrays: list[ArraySpec], meta: Metadata) -> None:
        """Write the file's own metadata (groups, tables) before any chunk."""
        ...

    def level_attrs(self, arrays: list[ArraySpec], meta: Metadata) -> dict[str, Any]:
        """Attributes of the level-0 dataset."""
        ...
