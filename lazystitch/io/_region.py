"""Partial TIFF reads: only the bytes of the strips or tiles that hold a Y, X window."""

from __future__ import annotations

import math
import os

import numpy as np
import tifffile

from lazystitch._typing import Shape
from lazystitch.io._tiff import check_unchanged, reading

__all__ = ["read_tiff_region"]

Window = tuple[slice, slice]


def read_tiff_region(
    path: str | os.PathLike, shape: Shape, dtype: np.dtype, window: Window
) -> tuple[np.ndarray, int]:
    """Read the Y, X ``window`` of every plane of a tile: ``(pixels, bytes read from the file)``.

    Reads only what the file's layout makes addressable: the rows of the window where the
    pixels are stored uncompressed and contiguous, the strips or tiles that intersect the
    window where they are stored in segments (any compression tifffile decodes). Files whose
    pages do not map one-to-one onto the planes of ``shape`` are read whole. ``pixels`` has
    shape ``shape[:-2] + window shape``.
    """
    y, x = (s.indices(n) for s, n in zip(window, shape[-2:], strict=True))
    out_shape = (*shape[:-2], y[1] - y[0], x[1] - x[0])
    with reading(path), tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        pages = list(series.pages)
        check_unchanged(path, shape, dtype, series)
        planes = math.prod(shape[:-2])
        if len(pages) != planes or any(
            p is None or tuple(p.shape) != tuple(shape[-2:]) for p in pages
        ):
            whole = series.asarray()
            read = sum(int(c) for p in pages if p is not None for c in p.databytecounts)
            return np.ascontiguousarray(whole[..., window[0], window[1]]), read
        out = np.empty((planes, *out_shape[-2:]), dtype)
        read = 0
        for i, page in enumerate(pages):
            read += _page_window(tif, page, (slice(*y[:2]), slice(*x[:2])), out[i])
    return out.reshape(out_shape), read


def _page_window(tif: tifffile.TiffFile, page: tifffile.TiffPage, window: Window, out) -> int:
    """Fill ``out`` with ``window`` of a 2-D page; the bytes read."""
    (y0, y1), (x0, x1) = (window[0].start, window[0].stop), (window[1].start, window[1].stop)
    h, w = page.shape
    if page.is_contiguous and page.compression == 1 and page.fillorder == 1:
        assert page.dtype is not None  # a contiguous page has one
        row = w * page.dtype.itemsize
        fh = tif.filehandle
        fh.seek(page.dataoffsets[0] + y0 * row)
        raw = fh.read((y1 - y0) * row)
        rows = np.frombuffer(raw, np.dtype(page.dtype).newbyteorder(tif.byteorder))
        out[...] = rows.reshape(y1 - y0, w)[:, x0:x1]
        return len(raw)
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
