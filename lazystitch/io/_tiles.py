"""A checked set of tiles: their sources, one shape, dtype and axes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
from lazystitch.io._bdv import bdv_source, split_bdv
from lazystitch.io._channels import discover_channels, stack_channels
from lazystitch.io._correct import Corrected, Correction, OneChannel
from lazystitch.io._czi import czi_source, split_czi
from lazystitch.io._hdf5 import hdf5_source, split_container
from lazystitch.io._members import is_members, list_members, split_series
from lazystitch.io._pattern import acquisition_index, pattern_fields, tile_paths
from lazystitch.io._source import RegionReader, TileSource, region_reader
from lazystitch.io._tiff import tiff_source
from lazystitch.io._zarr import split_zarr, zarr_source

if TYPE_CHECKING:  # dask.array loads with the first tile array
    import dask.array as da

__all__ = ["TileSet", "open_tiles", "open_tiles_pattern", "tile_set"]


@dataclass(frozen=True)
class TileSet:
    """Tiles that were all checked (headers only) to share one shape, dtype and axes.

    Attributes
    ----------
    sources : dict
        ``{(row, col): TileSource}`` sorted by (row, col): what each tile's reader found.
    shape : tuple of int
        Shape of every tile, ``(..., Y, X)``; leading axes (t, c, z) ride along.
    dtype : numpy.dtype
        The tiles' dtype as registration and fusion see them (after ``correction``).
    correction : Correction or None
        What every read applies (flat-field, a hook), if anything: see :meth:`corrected`.
    channel : int or None
        Set on the view :meth:`one_channel` makes: reads keep only this channel (after
        ``correction``), and ``shape`` and ``axes`` have no channel axis.
    """

    sources: Mapping[TileKey, TileSource]
    shape: Shape
    dtype: np.dtype
    correction: Correction | None = None
    channel: int | None = None

    @property
    def keys(self) -> tuple[TileKey, ...]:
        return tuple(self.sources)

    @property
    def tile_yx(self) -> tuple[int, int]:
        return int(self.shape[-2]), int(self.shape[-1])

    @property
    def axes(self) -> str:
        """The tiles' axis names (``"yx"``, ``"zyx"``, ``"cyx"``...)."""
        axes = next(iter(self.sources.values())).axes
        return axes if self.channel is None else axes.replace("c", "")

    @property
    def channels(self) -> tuple[str, ...] | None:
        """Names of the channels along the ``c`` axis, when the tiles have one: the names the
        first tile records, else ``"0"``, ``"1"``..."""
        if "c" not in self.axes:
            return None
        first = next(iter(self.sources.values()))
        count = self.shape[self.axes.index("c")]
        if first.channels is not None and len(first.channels) == count:
            return tuple(first.channels)
        return tuple(str(i) for i in range(count))

    def one_channel(self, index: int) -> TileSet:
        """The tiles' channel ``index`` alone (what registration on one channel reads)."""
        if self.channel is not None or "c" not in self.axes:
            raise ValueError("these tiles have no channel axis")
        c = self.axes.index("c")
        shape = (*self.shape[:c], *self.shape[c + 1 :])
        return TileSet(self.sources, shape, self.dtype, self.correction, index)

    @property
    def pixel_size_yx(self) -> tuple[float, float] | None:
        """The (Y, X) µm per px that every tile records, or None if any does not or they
        differ."""
        sizes = {s.pixel_size[-2:] if s.pixel_size else None for s in self.sources.values()}
        only = sizes.pop() if len(sizes) == 1 else None
        if only is None or only[0] is None or only[1] is None:
            return None
        return float(only[0]), float(only[1])

    @property
    def paths(self) -> list[Path]:
        """The files the tiles are read from (an output may not be one of them)."""
        every = (p for s in self.sources.values() for p in (s, *s.parts))
        return list(dict.fromkeys(p.path for p in every if p.path is not None))

    def with_keys(self, keys: Mapping[TileKey, TileKey]) -> TileSet:
        """The same tiles under new (row, col): ``keys`` maps each old key to its new one."""
        moved = {keys[k]: s for k, s in self.sources.items()}
        return dataclasses.replace(self, sources=dict(sorted(moved.items())))

    def corrected(self, correction: Correction | None) -> TileSet:
        """The same tiles, every read of them corrected by ``correction`` (checked here
        against the tiles' shape and axes)."""
        if self.channel is not None:
            raise ValueError("correct the tiles before taking one channel")
        if correction is None:
            return TileSet(self.sources, self.shape, self.sources_dtype)
        correction.check(self.shape, self.axes)
        return TileSet(self.sources, self.shape, correction.dtype, correction)

    @property
    def sources_dtype(self) -> np.dtype:
        """The dtype the tiles' files hold (``dtype`` is what a correction makes of it)."""
        return next(iter(self.sources.values())).dtype

    def region_reader(self, keys: Sequence[TileKey]) -> RegionReader:
        """A picklable reader of Y, X windows of the tiles ``keys``, called with a tile's place
        in ``keys``: what tasks that read many tiles carry (see ``fusion.fuse``)."""
        read = region_reader([self.sources[k].reader for k in keys])
        first = next(iter(self.sources.values()))
        if self.correction is not None:
            names = tuple(self.sources[k].name for k in keys)
            read = Corrected(read, self.correction, first.shape, first.axes, names)
        if self.channel is not None:
            read = OneChannel(read, first.axes.index("c"), self.channel)
        return read

    def dask_tile(self, key: TileKey) -> da.Array:
        """The tile at ``key`` as a one-chunk dask array (a ``dask.delayed`` read)."""
        import dask.array as da

        src = self.sources[key]
        extra = json.dumps([self.correction.describe() if self.correction else None, self.channel])
        token = f"read-tile-{_token(src, extra)}"
        whole = (slice(0, self.shape[-2]), slice(0, self.shape[-1]))
        read = self.region_reader([key])
        delayed = dask.delayed(_read_whole, pure=True, name=token)(read, whole)
        return da.from_delayed(delayed, shape=self.shape, dtype=self.dtype, name=f"tile-{token}")

    def manifest(self) -> dict[str, str]:
        """``{tile: identity}`` in (row, col) order (for a file, its absolute path and
        "size:modification time (ns)"): what a resume compares to name a tile that changed."""
        return {_where(s): s.identity for s in self.sources.values()}

    def fingerprint(self) -> str:
        """A hash of every tile's (row, col), place and identity."""
        h = hashlib.sha256()
        for key, s in self.sources.items():
            h.update(f"{key}|{_where(s)}|{s.identity}\n".encode())
        return h.hexdigest()


def _where(src: TileSource) -> str:
    """A file tile by its absolute path, any other by its name."""
    if src.path is not None and src.name == str(src.path):
        return str(src.path.resolve())
    return src.name


def _read_whole(reader: RegionReader, window: tuple[slice, slice]) -> np.ndarray:
    pixels = reader.read(0, window)[0]
    return pixels if pixels.flags.writeable else pixels.copy()


def _token(src: TileSource, extra: str = "") -> str:
    raw = f"{_where(src)}|{src.identity}|{extra}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def tile_set(sources: Mapping[TileKey, TileSource]) -> TileSet:
    """Check that the tiles share one shape, dtype and axes; the :class:`TileSet` of them.

    Raises
    ------
    TileError
        Naming the first tile (and its row, col) that differs from the first one.
    """
    keys = sorted(sources)
    if not keys:
        raise TileError("no tiles were given")
    ref = sources[keys[0]]
    for key in keys[1:]:
        src = sources[key]
        for what in ("shape", "dtype", "axes"):
            mine, theirs = getattr(src, what), getattr(ref, what)
            if mine != theirs:
                raise TileError(
                    f"tile {src.name} (row {key[0]}, col {key[1]}) has {what} {_show(mine)}, "
                    f"but tile {ref.name} has {_show(theirs)}; all tiles must have one {what}"
                )
    return TileSet(sources={k: sources[k] for k in keys}, shape=ref.shape, dtype=ref.dtype)


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def open_tiles(paths: Mapping[TileKey, str | os.PathLike]) -> TileSet:
    """Check every tile's header and return them as a :class:`TileSet`.

    A location is a TIFF file, or a dataset inside an HDF5 file written ``FILE.h5:/path``.

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
        results = list(pool.map(_try_source, (Path(paths[k]) for k in keys)))
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        first = errors[0]
        if len(errors) > 1:
            msg = f"{first} (and {len(errors) - 1} more bad tile file(s))"
            raise type(first)(msg)
        raise first
    return tile_set(dict(zip(keys, results, strict=True)))  # type: ignore[arg-type]


def _try_source(location: Path) -> TileSource | Exception:
    try:
        series = split_series(location)
        if series is not None:
            return tiff_source(*series)
        czi = split_czi(location)
        if czi is not None:
            return czi_source(*czi)
        bdv = split_bdv(location)
        if bdv is not None:
            return bdv_source(*bdv)
        in_zarr = split_zarr(location)
        if in_zarr is not None:
            return zarr_source(*in_zarr)
        inner = split_container(location)
        if inner is not None:
            return hdf5_source(*inner)
        return tiff_source(location)
    except TileError as exc:
        return exc


def open_tiles_pattern(
    pattern: str | os.PathLike,
    keys: Iterable[TileKey],
    *,
    start: int = 0,
    order: str = "row",
    grid: tuple[int, int] | None = None,
    channels: Sequence[str] | None = None,
) -> TileSet:
    """Format ``pattern`` for each (row, col) in ``keys`` and open those tiles.

    ``start``, ``order`` and ``grid`` (rows, cols; default: from ``keys``) are as in
    :func:`lazystitch.io.tile_paths`. A ``{channel}`` field stacks each tile's channel files
    on a ``c`` axis: ``channels`` names them in order (default: the values the first tile's
    files on disk give the field).

    Examples
    --------
    >>> open_tiles_pattern("/nonexistent/t_{row}_{col}.tif", [(0, 0)])
    Traceback (most recent call last):
    ...
    lazystitch.errors.TileNotFoundError: tile file /nonexistent/t_0_0.tif does not exist
    """
    keys = sorted(keys)
    rows, cols = grid or (
        max((r for r, _ in keys), default=0) + 1,
        max((c for _, c in keys), default=0) + 1,
    )
    pattern = os.fspath(pattern)

    def paths(channel: str | None = None) -> dict[TileKey, Path]:
        return tile_paths(
            pattern, keys, rows=rows, cols=cols, start=start, order=order, channel=channel
        )

    if is_members(pattern):
        members = list_members(pattern)
        places = {k: acquisition_index(*k, rows, cols, order) for k in keys}
        beyond = [k for k, i in places.items() if i >= len(members)]
        if beyond:
            raise TileError(
                f"tiles.pattern {pattern!r} holds {len(members)} tiles, but the layout needs "
                f"{len(keys)} (tile (row {beyond[0][0]}, col {beyond[0][1]}) would be number "
                f"{places[beyond[0]]})"
            )
        return open_tiles({k: members[i] for k, i in places.items()})
    if "channel" not in pattern_fields(pattern):
        return open_tiles(paths())
    if not keys:
        raise TileError("no tiles were given")
    if channels is None:
        r, c = keys[0]
        index = acquisition_index(r, c, rows, cols, order) + start
        channels = discover_channels(pattern, row=r + start, col=c + start, index=index)
    names = [str(n) for n in channels]
    per_channel = [open_tiles(paths(n)) for n in names]
    return tile_set({k: stack_channels([t.sources[k] for t in per_channel], names) for k in keys})
