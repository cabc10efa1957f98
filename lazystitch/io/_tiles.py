"""A checked set of tiles, each exposed as a lazy dask array."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dask
import numpy as np

from lazystitch._typing import Shape, TileKey
from lazystitch.errors import TileError
from lazystitch.io._pattern import tile_paths
from lazystitch.io._region import RegionReader
from lazystitch.io._tiff import TiffHeader, read_tiff, tiff_header

if TYPE_CHECKING:  # dask.array loads with the first tile array
    import dask.array as da

__all__ = ["TileSet", "open_tiles", "open_tiles_pattern"]


@dataclass(frozen=True)
class TileSet:
    """Tiles that were all checked to exist and share one shape and dtype.

    Attributes
    ----------
    headers : dict
        ``{(row, col): TiffHeader}`` sorted by (row, col).
    shape : tuple of int
        Shape of every tile, ``(..., Y, X)``; leading axes (z, t, c) ride along.
    dtype : numpy.dtype
    """

    headers: Mapping[TileKey, TiffHeader]
    shape: Shape
    dtype: np.dtype

    @property
    def keys(self) -> tuple[TileKey, ...]:
        return tuple(self.headers)

    @property
    def tile_yx(self) -> tuple[int, int]:
        return int(self.shape[-2]), int(self.shape[-1])

    def region_reader(self, keys: Sequence[TileKey]) -> RegionReader:
        """A picklable reader of Y, X windows of the tiles ``keys``, called with a tile's place
        in ``keys``: what tasks that read many tiles carry (see ``fusion.fuse``)."""
        return RegionReader(tuple(str(self.headers[k].path) for k in keys), self.shape, self.dtype)

    def dask_tile(self, key: TileKey) -> da.Array:
        """The tile at ``key`` as a one-chunk dask array (a ``dask.delayed`` TIFF read)."""
        import dask.array as da

        header = self.headers[key]
        token = f"read-tile-{_token(header)}"
        delayed = dask.delayed(read_tiff, pure=True, name=token)(
            str(header.path), self.shape, self.dtype
        )
        return da.from_delayed(delayed, shape=self.shape, dtype=self.dtype, name=f"tile-{token}")

    def manifest(self) -> dict[str, str]:
        """``{tile file: "size:modification time (ns)"}`` in (row, col) order: what a resume
        compares to name a tile file that changed."""
        return {str(hd.path.resolve()): f"{hd.size}:{hd.mtime_ns}" for hd in self.headers.values()}

    def fingerprint(self) -> str:
        """A hash of every tile's (row, col), path, size and modification time."""
        h = hashlib.sha256()
        for key, hd in self.headers.items():
            h.update(f"{key}|{hd.path.resolve()}|{hd.size}|{hd.mtime_ns}\n".encode())
        return h.hexdigest()


def _token(header: TiffHeader) -> str:
    raw = f"{header.path.resolve()}|{header.size}|{header.mtime_ns}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def open_tiles(paths: Mapping[TileKey, str | os.PathLike]) -> TileSet:
    """Check every tile's header and return them as a :class:`TileSet`.

    Reads headers only (in a few threads, since shared filesystems are latency bound).

    Raises
    ------
    TileNotFoundError
        Naming the first missing file (and how many are missing).
    TileError
        Naming a file that is unreadable or truncated, or whose shape or dtype differs from the
        first tile's.
    """
    keys = sorted(paths)
    if not keys:
        raise TileError("no tiles were given")
    with ThreadPoolExecutor(max_workers=min(8, len(keys))) as pool:
        results = list(pool.map(_try_header, (Path(paths[k]) for k in keys)))
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        first = errors[0]
        if len(errors) > 1:
            msg = f"{first} (and {len(errors) - 1} more bad tile file(s))"
            raise type(first)(msg)
        raise first
    headers: dict[TileKey, TiffHeader] = dict(zip(keys, results, strict=True))  # type: ignore[arg-type]
    ref_key = keys[0]
    ref = headers[ref_key]
    for key in keys[1:]:
        hd = headers[key]
        if hd.shape != ref.shape:
            raise TileError(
                f"tile file {hd.path} (row {key[0]}, col {key[1]}) has shape {hd.shape}, "
                f"but tile {ref.path} has {ref.shape}; all tiles must have one shape"
            )
        if hd.dtype != ref.dtype:
            raise TileError(
                f"tile file {hd.path} (row {key[0]}, col {key[1]}) has dtype {hd.dtype}, "
                f"but tile {ref.path} has {ref.dtype}; all tiles must have one dtype"
            )
    return TileSet(headers=headers, shape=ref.shape, dtype=ref.dtype)


def _try_header(path: Path) -> TiffHeader | Exception:
    try:
        return tiff_header(path)
    except TileError as exc:
        return exc


def open_tiles_pattern(
    pattern: str | os.PathLike,
    keys: Iterable[TileKey],
    *,
    start: int = 0,
    order: str = "row",
    grid: tuple[int, int] | None = None,
) -> TileSet:
    """Format ``pattern`` for each (row, col) in ``keys`` and open those tiles.

    ``start``, ``order`` and ``grid`` (rows, cols; default: from ``keys``) are as in
    :func:`lazystitch.io.tile_paths`.

    Examples
    --------
    >>> open_tiles_pattern("/nonexistent/t_{row}_{col}.tif", [(0, 0)])
    Traceback (most recent call last):
    ...
    lazystitch.errors.TileNotFoundError: tile file /nonexistent/t_0_0.tif does not exist
    """
    keys = list(keys)
    rows, cols = grid or (
        max((r for r, _ in keys), default=0) + 1,
        max((c for _, c in keys), default=0) + 1,
    )
    return open_tiles(
        tile_paths(os.fspath(pattern), keys, rows=rows, cols=cols, start=start, order=order)
    )
