"""Partial TIFF reads: only the bytes of the strips or tiles that hold a Y, X window."""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import mmap
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import tifffile

from lazystitch._typing import Shape
from lazystitch.errors import TileError
from lazystitch.io._source import Window
from lazystitch.io._tiff import check_unchanged, reading

__all__ = ["read_tiff_region"]


def read_tiff_region(
    path: str | os.PathLike,
    shape: Shape,
    dtype: np.dtype,
    window: Window,
    view: bool = False,
    series: int = 0,
) -> tuple[np.ndarray, int]:
    """Read the Y, X ``window`` of every plane of a tile: ``(pixels, bytes read from the file)``.

    Reads only what the file's layout makes addressable: the rows of the window where the
    pixels are stored uncompressed and contiguous, the strips or tiles that intersect the
    window where they are stored in segments (any compression tifffile decodes). Files whose
    pages do not map one-to-one onto the planes of ``shape`` are read whole. ``pixels`` has
    shape ``shape[:-2] + window shape``.

    With ``view``, uncompressed pages stored at a regular stride come back as a read-only
    view of the file mapped into memory (unmapped when the last view goes): the caller's own
    copy into the mosaic is then the only one (fusion's blocks; measured on 2048^2 tiles, the
    window copy was a quarter of a block's time).
    """
    y, x = (s.indices(n) for s, n in zip(window, shape[-2:], strict=True))
    out_shape = (*shape[:-2], y[1] - y[0], x[1] - x[0])
    planes = math.prod(shape[:-2])
    with reading(path):
        st = os.stat(path)
        layout = _planes_layout(os.fspath(path), st.st_size, st.st_mtime_ns, shape, dtype, series)
        if layout is not None:
            pixels = layout.view(path)[:, y[0] : y[1], x[0] : x[1]]
            nbytes = (y[1] - y[0]) * shape[-1] * planes * dtype.itemsize
            if not view:
                pixels = pixels.astype(dtype)  # a copy, in native byte order
            return pixels.reshape(out_shape), nbytes
        # an open file object: tifffile then resolves no path (measured: 0.3 ms an open), and
        # its descriptor maps the pixels of uncompressed pages
        with open(path, "rb") as fh, tifffile.TiffFile(fh) as tif:
            found = tif.series[series]
            pages: list[Any] = [p if p is None else p.aspage() for p in found.pages]  # frames
            check_unchanged(path, shape, dtype, found)
            if len(pages) != planes or any(
                p is None or tuple(p.shape) != tuple(shape[-2:]) for p in pages
            ):
                whole = found.asarray()
                read = sum(int(c) for p in pages if p is not None for c in p.databytecounts)
                return np.ascontiguousarray(whole[..., window[0], window[1]]), read
            out = np.empty((planes, *out_shape[-2:]), dtype)
            read = 0
            with _Mapping(fh, path) as mapped:
                for i, page in enumerate(pages):
                    win = (slice(*y[:2]), slice(*x[:2]))
                    read += _page_window(tif, page, win, out[i], mapped)
    return out.reshape(out_shape), read


@dataclass(frozen=True)
class _PlanesLayout:
    """Where a file's uncompressed planes lie: evenly spaced, each stored row by row."""

    offset: int
    stride: int
    dtype: np.dtype
    shape: tuple[int, int, int]  # planes, Y, X

    @property
    def end(self) -> int:
        n, h, w = self.shape
        return self.offset + (n - 1) * self.stride + h * w * self.dtype.itemsize

    def view(self, path: str | os.PathLike) -> np.ndarray:
        """Every plane, as a read-only view of the file mapped into memory (unmapped when the
        last view of it goes)."""
        with open(path, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        if len(mapped) < self.end:  # shortened since its header was read
            mapped.close()
            raise TileError(f"tile file {path} was truncated after it was checked")
        item = self.dtype.itemsize
        return np.ndarray(
            self.shape, self.dtype, buffer=mapped, offset=self.offset,
            strides=(max(self.stride, 1), self.shape[2] * item, item),
        )  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _planes_layout(
    path: str, size: int, mtime_ns: int, shape: Shape, dtype: np.dtype, series: int = 0
) -> _PlanesLayout | None:
    """The layout of a tile file's planes if they can be viewed in place, else None.

    Parsed once per version of the file (its size and modification time are in the key):
    fusion reads each tile's windows from several blocks, and parsing its header for each
    read held the GIL for about a quarter of the reading's time."""
    with open(path, "rb") as fh, tifffile.TiffFile(fh) as tif:
        found = tif.series[series]
        pages: list[Any] = [p if p is None else p.aspage() for p in found.pages]  # frames
        check_unchanged(path, shape, dtype, found)
        planes = math.prod(shape[:-2])
        if len(pages) != planes or not all(
            p is not None and tuple(p.shape) == tuple(shape[-2:]) and _stored_raw(p) for p in pages
        ):
            return None
        assert pages[0].dtype is not None  # a contiguous page has one
        dt = np.dtype(pages[0].dtype).newbyteorder(tif.byteorder)
        offsets = [int(p.dataoffsets[0]) for p in pages]
    h, w = shape[-2:]
    stride = offsets[1] - offsets[0] if len(offsets) > 1 else 0
    if any(b - a != stride for a, b in itertools.pairwise(offsets)) or (
        len(offsets) > 1 and stride < h * w * dt.itemsize
    ):
        return None  # unevenly spaced (or overlapping) planes: read them one by one
    return _PlanesLayout(offsets[0], stride, dt, (planes, h, w))  # view() checks the size


def _stored_raw(page: tifffile.TiffPage) -> bool:
    """Whether a page's pixels lie in the file as they are: uncompressed, in one run."""
    return bool(page.is_contiguous and page.compression == 1 and page.fillorder == 1)


class _Mapping:
    """The file mapped read-only on first use (a page cache copy of only the window's bytes,
    where ``read`` would copy whole rows), unmapped on exit."""

    def __init__(self, fh, path: str | os.PathLike) -> None:
        self.fh, self.path = fh, path
        self._map: mmap.mmap | None = None

    def __enter__(self) -> _Mapping:
        return self

    def array(self, offset: int, dtype: np.dtype, shape: tuple[int, int]) -> np.ndarray:
        nbytes = math.prod(shape) * dtype.itemsize
        if self._map is None:
            size = os.fstat(self.fh.fileno()).st_size
            if offset + nbytes > size:  # shortened since its header was checked
                raise TileError(f"tile file {self.path} was truncated after it was checked")
            self._map = mmap.mmap(self.fh.fileno(), 0, access=mmap.ACCESS_READ)
        if offset + nbytes > len(self._map):
            raise TileError(f"tile file {self.path} was truncated after it was checked")
        return np.frombuffer(self._map, dtype, math.prod(shape), offset).reshape(shape)

    def __exit__(self, *exc: object) -> None:
        if self._map is not None:
            # an error may leave an array over the map: it is unmapped when that goes
            with contextlib.suppress(BufferError):
                self._map.close()


def _page_window(
    tif: tifffile.TiffFile, page: tifffile.TiffPage, window: Window, out, mapped: _Mapping
) -> int:
    """Fill ``out`` with ``window`` of a 2-D page; the bytes read."""
    (y0, y1), (x0, x1) = (window[0].start, window[0].stop), (window[1].start, window[1].stop)
    h, w = page.shape
    if _stored_raw(page):
        assert page.dtype is not None  # a contiguous page has one
        dt = np.dtype(page.dtype).newbyteorder(tif.byteorder)
        pixels = mapped.array(int(page.dataoffsets[0]), dt, (h, w))
        out[...] = pixels[y0:y1, x0:x1]
        del pixels  # the mapping closes only when no array uses it
        return (y1 - y0) * w * dt.itemsize
    (ch, cw), chunked = page.chunks[-2:], page.chunked
    if (
        page.samplesperpixel != 1
        or page.imagedepth != 1
        or len(page.dataoffsets) != math.prod(chunked)
    ):
        out[...] = page.asarray()[y0:y1, x0:x1]
        return sum(int(c) for c in page.databytecounts)
    ny, nx = chunked[-2:]
    wanted = [
        iy * nx + ix
        for iy in range(y0 // ch, min(ny, -(-y1 // ch)))
        for ix in range(x0 // cw, min(nx, -(-x1 // cw)))
    ]
    offsets = [page.dataoffsets[i] for i in wanted]
    counts = [page.databytecounts[i] for i in wanted]
    for data, index in tif.filehandle.read_segments(offsets, counts, indices=wanted):
        segment, at, _ = page.decode(data, index, jpegtables=page.jpegtables)
        if segment is None:  # a missing segment: fill value
            continue
        sy, sx = at[-3], at[-2]
        seg = segment.reshape(segment.shape[-3], segment.shape[-2])
        ya, yb = max(y0, sy), min(y1, sy + seg.shape[0], h)
        xa, xb = max(x0, sx), min(x1, sx + seg.shape[1], w)
        if ya < yb and xa < xb:
            out[ya - y0 : yb - y0, xa - x0 : xb - x0] = seg[ya - sy : yb - sy, xa - sx : xb - sx]
    return sum(int(c) for c in counts)
