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

__all__ = ["TiffHeader", "read_tiff", "tiff_header"]


@dataclass(frozen=True)
class TiffHeader:
    """What a TIFF's header says about its first image series."""

    path: Path
    shape: Shape
    dtype: np.dtype
    size: int
    mtime_ns: int


def tiff_header(path: str | os.PathLike) -> TiffHeader:
    """Read the header of ``path`` and check that its pixel data is all there.

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
    try:
        st = path.stat()
    except FileNotFoundError:
        raise TileNotFoundError(f"tile file {path} does not exist") from None
    if not path.is_file():
        raise TileError(f"tile file {path} is not a regular file")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape = tuple(int(s) for s in series.shape)
            dtype = np.dtype(series.dtype)
            axes = series.axes
            end = _data_end(series)
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
    return TiffHeader(path, shape, dtype, st.st_size, st.st_mtime_ns)


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
def reading(path: str | os.PathLike) -> Iterator[None]:
    """Turn any failure while reading a checked tile's pixels into an error naming the file."""
    try:
        yield
    except FileNotFoundError:
        raise TileNotFoundError(f"tile file {path} disappeared after it was checked") from None
    except TileError:
        raise
    except Exception as exc:
        raise TileError(f"tile file {path} could not be read: {exc}") from None


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
