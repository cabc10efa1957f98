"""The pyramidal OME-TIFF format (``--format ome-tiff``, an output named ``*.ome.tif``):
tiled pages of 512 x 512, the pyramid's levels as SubIFDs of each plane, the pixel size and
channel names in its OME-XML, written through tifffile (what QuPath and ASHLAR users open).

A TIFF is one sequential file: its pages and their offsets are written front to back, so
chunks cannot land in it out of order, nor be journaled one by one. The core therefore
writes the pyramid first, with every promise it keeps (one task per chunk, the journal,
``--resume``), into the plain HDF5 file ``OUT.partial.levels.h5``; once that is complete, it
is converted into ``OUT.partial`` in one pass, band of rows by band of rows, and renamed to
``OUT``. A run killed while converting resumes by converting again from the complete
levels (no pixel is fused twice). The cost is one more write and read of the pyramid's
bytes (see ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lazystitch.errors import ConfigError
from lazystitch.writers._codec import ChunkCodec, Compression
from lazystitch.writers._format import Metadata
from lazystitch.writers._format_hdf5 import PlainHDF5, level_name
from lazystitch.writers._format_omezarr import default_axes
from lazystitch.writers._plan import LABELS_CODEC, TILE_MAP, ArraySpec

__all__ = ["RUN_TAG", "TILE", "OmeTiff", "tiff_header"]

TILE = 512  # the TIFF's tile side (QuPath, OpenSlide and ASHLAR's own output use 512 or less)
RUN_TAG = 65000  # a private TIFF tag on the first page: the run header (JSON)


def tiff_header(path: Path) -> dict | None:
    """The run header of a complete OME-TIFF output, or None (missing, unreadable, not ours)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages.first.tags.get(RUN_TAG)
            return json.loads(tag.value) if tag is not None else None
    except (OSError, ValueError, tifffile.TiffFileError):
        return None


def _tiles(level: Any, tile: int) -> Iterator[np.ndarray]:
    """The tiles of every plane of ``level`` (an h5py dataset), in TIFF order: plane by
    plane, row by row; each band of rows is read once."""
    h, w = level.shape[-2:]
    for plane in np.ndindex(*level.shape[:-2]):
        for y in range(0, h, tile):
            rows = (*plane, slice(y, y + tile), slice(None))
            band = level[rows]
            for x in range(0, w, tile):
                yield band[:, x : x + tile]


class OmeTiff:
    """Pyramidal OME-TIFF, converted from the core's complete plain-HDF5 pyramid."""

    name = "ome-tiff"
    container = "tiff"

    def data_path(self, out: Path) -> Path:
        return out

    def companions(self, out: Path) -> list[Path]:
        return []

    def arrays(
        self,
        dataset: str,
        shapes: list[tuple[int, ...]],
        dtype: np.dtype,
        chunks: list[tuple[int, ...]],
        channels: int = 0,
    ) -> list[ArraySpec]:
        """The arrays of the pyramid the core writes (plain HDF5) for the TIFF."""
        return PlainHDF5().arrays("mosaic", shapes, dtype, chunks, channels)

    def write_companions(self, out: Path, arrays: list[ArraySpec], meta: Metadata) -> None:
        return None

    def tile_map_name(self, level: int) -> str:
        """In the levels file (plain HDF5); the TIFF holds it as its second image."""
        return level_name(TILE_MAP, level)

    def levels_path(self, out: Path) -> Path:
        """Where the core writes the pyramid the TIFF is made from."""
        from lazystitch.writers._files import OutputPaths

        return OutputPaths(out).levels

    def check(
        self, shape: tuple[int, ...], dtype: np.dtype, codec: ChunkCodec, channels: int = 0
    ) -> None:
        if codec.compression not in (Compression.none, Compression.gzip):
            raise ConfigError(
                f"output.compression: the OME-TIFF is written uncompressed or with gzip "
                f"(deflate), which every TIFF reader decodes; not {codec}"
            )
        if np.dtype(dtype).kind not in "uif":
            raise ConfigError(f"output: OME-TIFF cannot hold pixels of type {dtype}")
        if len(shape) > 5:
            raise ConfigError(
                f"output: OME-TIFF holds up to 5 dimensions; the mosaic has {len(shape)}"
            )

    def convert(
        self,
        levels_file: Path,
        dataset: str,
        dst: Path,
        meta: Metadata,
        codec: ChunkCodec,
        header: dict,
    ) -> None:
        """Write the TIFF at ``dst`` from the complete levels of ``levels_file`` (fsync'ed;
        the caller renames it into place)."""
        import h5py
        import tifffile

        from lazystitch.writers._files import fsync_path

        with h5py.File(levels_file, "r") as f:
            names = [str(n) for n in f[dataset].attrs["lazystitch_levels"]]
            levels = [f[n] for n in names]
            axes = (meta.axes or default_axes(levels[0].ndim, bool(meta.channels))).upper()
            md: dict[str, Any] = {"axes": axes}
            px = meta.pixel_size
            if px is not None:
                md.update(
                    PhysicalSizeX=px, PhysicalSizeXUnit="µm", PhysicalSizeY=px,
                    PhysicalSizeYUnit="µm",
                )  # fmt: skip
            if meta.channels:
                md["Channel"] = {"Name": list(meta.channels)}
            common: dict[str, Any] = {
                "tile": (TILE, TILE),
                "photometric": "minisblack",
                "compression": "zlib" if codec.compression is Compression.gzip else None,
                "compressionargs": {"level": codec.level} if codec.level is not None else None,
            }
            images = [(levels, md, True, common)]
            if TILE_MAP in f:  # the tile map: a second image, Y x X, with its own levels
                names = [str(n) for n in f[TILE_MAP].attrs["lazystitch_levels"]]
                yx = {k: v for k, v in md.items() if k.startswith("Physical")}
                tile_md = {"axes": "YX", "Name": TILE_MAP, **yx}
                labels = ChunkCodec.parse(LABELS_CODEC)  # deflate, whatever the mosaic's
                deflate = {"compression": "zlib", "compressionargs": {"level": labels.level}}
                images.append(([f[n] for n in names], tile_md, False, common | deflate))
            with tifffile.TiffWriter(dst, bigtiff=True, ome=True) as tif:
                for image, image_md, first, settings in images:
                    for k, level in enumerate(image):
                        extra: dict[str, Any] = {}
                        if px is not None:
                            extra = {"resolution": (1e4 / (px * 2**k),) * 2, "resolutionunit": 3}
                        if k == 0:
                            extra.update(subifds=len(image) - 1, metadata=image_md)
                        else:
                            extra.update(subfiletype=1, metadata=None)
                        if k == 0 and first:
                            run = json.dumps(header, sort_keys=True)
                            extra["extratags"] = [(RUN_TAG, "s", 0, run, True)]
                        shape = level.shape if first else level.shape[-2:]
                        tif.write(
                            _tiles(level, TILE), shape=shape, dtype=level.dtype, **settings,
                            **extra,
                        )  # fmt: skip
        fsync_path(dst)
