"""TIFF tiles: header checks (no pixels read) and the lazy per-tile read."""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from lazystitch._typing import Shape
from lazystitch.errors import TileError, TileNotFoundError
from lazystitch.io._ome import ome_metadata
from lazystitch.io._source import TileSource, check_axes, stat_tile

__all__ = ["TiffFiles", "TiffHeader", "TiffReader", "read_tiff", "tiff_header", "tiff_source"]

_LEADING = {1: "z", 2: "cz", 3: "tcz"}
"""Names for leading axes whose TIFF axis letters are not t, c, z in order (ImageJ's and
tifffile's I, Q, or none): one leading axis is taken for z, as the tiles' planes."""


@dataclass(frozen=True)
class TiffHeader:
    """What a TIFF's header says about its first image series."""

    path: Path
    shape: Shape
    dtype: np.dtype
    size: int
    mtime_ns: int
    axes: str = ""  # tifffile's axis letters of the series
    ome_xml: str | None = None  # the file's OME-XML, if it is an OME-TIFF
    series: int = 0  # which of the file's image series
    series_count: int = 1  # how many the file has


@dataclass(frozen=True)
class TiffReader:
    """Reads windows of one TIFF tile (an image series of a file) by path, opening it in the
    task."""

    path: str
    shape: Shape
    dtype: np.dtype
    series: int = 0

    def read(self, window: tuple[slice, slice], view: bool = False) -> tuple[np.ndarray, int]:
        from lazystitch.io._region import read_tiff_region

        return read_tiff_region(
            self.path, self.shape, self.dtype, window, view=view, series=self.series
        )

    @classmethod
    def batch(cls, readers: list[TiffReader]) -> TiffFiles | None:
        """Readers of one shape and dtype as one recipe holding their paths (and series,
        where any is not the first)."""
        shape, dtype = readers[0].shape, readers[0].dtype
        if any(r.shape != shape or r.dtype != dtype for r in readers):
            return None
        series = tuple(r.series for r in readers) if any(r.series for r in readers) else ()
        return TiffFiles(tuple(r.path for r in readers), shape, dtype, series)


@dataclass(frozen=True)
class TiffFiles:
    """The region reader of TIFF tiles of one shape and dtype: their paths (see
    :func:`~lazystitch.io.region_reader`)."""

    paths: tuple[str, ...]
    shape: Shape
    dtype: np.dtype
    series: tuple[int, ...] = ()  # per path; empty: every tile is its file's first series

    def __call__(self, index: int, window: tuple[slice, slice]) -> np.ndarray:
        return self.read(index, window)[0]

    def read(self, index: int, window: tuple[slice, slice]) -> tuple[np.ndarray, int]:
        from lazystitch.io._region import read_tiff_region

        series = self.series[index] if self.series else 0
        path = self.paths[index]
        return read_tiff_region(path, self.shape, self.dtype, window, view=True, series=series)


def tiff_source(path: str | os.PathLike, series: int = 0) -> TileSource:
    """The :class:`~lazystitch.io.TileSource` of a TIFF tile (image series ``series`` of the
    file), from its header (see :func:`tiff_header` for what is checked)."""
    hd = tiff_header(path, series)
    letters = hd.axes.lower()[-len(hd.shape) :] if hd.axes else ""
    lead = len(hd.shape) - 2
    try:
        axes = check_axes(letters, len(hd.shape), "")
    except TileError:
        axes = _LEADING.get(lead, "") + "yx"
        if len(axes) != len(hd.shape):
            raise TileError(
                f"tile file {hd.path} has {len(hd.shape)} axes ({hd.axes!r}); "
                "lazystitch reads tiles of at most t, c, z, y, x"
            ) from None
    name = str(hd.path) if hd.series_count == 1 else f"{hd.path} series {series}"
    meta = ome_metadata(hd.ome_xml, axes, hd.shape, name, series) if hd.ome_xml else {}
    return TileSource(
        name=name,
        shape=hd.shape,
        dtype=hd.dtype,
        axes=axes,
        reader=TiffReader(str(hd.path), hd.shape, hd.dtype, series),
        identity=f"{hd.size}:{hd.mtime_ns}" + (f":{series}" if series else ""),
        path=hd.path,
        **meta,
    )


def tiff_header(path: str | os.PathLike, series: int = 0) -> TiffHeader:
    """Read the header of ``path`` (of its image series ``series``) and check that its pixel
    data is all there.

    Only IFDs are parsed; no pixel data is read. A file whose strips or tiles end past the end
    of the file (a truncated copy) is rejected.

    Raises
    ------
    TileNotFoundError
        If the file does not exist.
    TileError
        If the header cannot be parsed, the file is truncated, or the series is not an image
        whose last two axes are Y, X.
    """
    path = Path(path)
    st = stat_tile(path)
    if not path.is_file():
        raise TileError(f"tile file {path} is not a regular file")
    try:
        with tifffile.TiffFile(path) as tif:
            count = len(tif.series)
            if not 0 <= series < count:
                raise TileError(
                    f"tile file {path} has {count} image series; there is no series {series}"
                )
            found = tif.series[series]
            shape = tuple(int(s) for s in found.shape)
            dtype = np.dtype(found.dtype)
            axes = found.axes
            end = _data_end(found)
            ome_xml = tif.ome_metadata if tif.is_ome else None
    except (tifffile.TiffFileError, ValueError, IndexError, OSError, struct.error) as exc:
        raise TileError(f"tile file {path} is not a readable TIFF: {exc}") from None
    if end > st.st_size:
        raise TileError(
            f"tile file {path} is truncated: its pixel data ends at byte {end} "
            f"but the file has {st.st_size} bytes"
        )
    if len(shape) < 2:
        raise TileError(f"tile file {path} has shape {shape}; a tile needs at least Y, X axes")
    if axes.endswith("S") and shape[-1] > 1:
        raise TileError(
            f"tile file {path} has {shape[-1]} samples per pixel (RGB, axes {axes!r}); "
            "lazystitch stitches single-channel tiles whose last two axes are Y, X"
        )
    return TiffHeader(path, shape, dtype, st.st_size, st.st_mtime_ns, axes, ome_xml, series, count)


def _data_end(series: tifffile.TiffPageSeries) -> int:
    """Byte offset one past the last pixel byte of ``series``."""
    if series.dataoffset is not None:  # contiguous, uncompressed
        return int(series.dataoffset) + int(series.nbytes)
    end = 0
    for page in series.pages:
        if page is None:
            continue
        offsets, counts = page.dataoffsets, page.databytecounts
        if len(offsets):
            end = max(end, max(int(o) + int(c) for o, c in zip(offsets, counts, strict=True)))
    return end


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str = "tile file") -> Iterator[None]:
    """Turn any failure while reading a checked tile's pixels into an error naming the file
    (``what``: how it is named, e.g. ``"tile"`` for a dataset in a container)."""
    try:
        yield
    except FileNotFoundError:
        raise TileNotFoundError(f"{what} {path} disappeared after it was checked") from None
    except TileError:
        raise
    except Exception as exc:
        raise TileError(f"{what} {path} could not be read: {exc}") from None


def check_unchanged(path: str | os.PathLike, shape: Shape, dtype: np.dtype, found) -> None:
    """Raise if ``found`` (an array or a tifffile series) no longer has the checked shape/dtype."""
    if tuple(found.shape) != tuple(shape) or found.dtype != dtype:
        raise TileError(
            f"tile file {path} changed after it was checked: expected {tuple(shape)} {dtype}, "
            f"found {tuple(found.shape)} {found.dtype}"
        )


def read_tiff(path: str | os.PathLike, shape: Shape, dtype: np.dtype) -> np.ndarray:
    """Read a whole tile (its first series) and check it has the expected shape and dtype.

    This is the function every lazy tile task runs (on a worker).
    """
    with reading(path):
        data = tifffile.imread(path, series=0)
    check_unchanged(path, shape, dtype, data)
    return data
