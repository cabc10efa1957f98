"""Tiles a notebook already holds: NumPy, dask or Zarr arrays, one per (row, col)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from dask.base import tokenize

from lazystitch._typing import TileKey
from lazystitch.errors import TileError
from lazystitch.io._source import DEFAULT_AXES, TileSource, Window, check_axes
from lazystitch.io._tiles import TileSet, tile_set

__all__ = ["ArrayReader", "from_arrays"]


@dataclass(frozen=True)
class ArrayReader:
    """Reads windows of one array tile: a NumPy array travels with the task; a dask array's
    window is computed inside the task on its own (synchronous) scheduler; a Zarr array reads
    only the chunks the window touches."""

    array: Any

    def read(self, window: Window, view: bool = False) -> tuple[np.ndarray, int]:
        index = (Ellipsis, *window)
        part = self.array[index]
        if hasattr(part, "compute"):  # dask: no nested cluster call from inside a task
            pixels = np.asarray(part.compute(scheduler="sync"))
        else:
            pixels = np.asarray(part)
        if not view and pixels.base is not None:  # a view of the held array: the caller's own
            pixels = pixels.copy()
        return pixels, int(pixels.nbytes)


def from_arrays(
    arrays: Mapping[TileKey, Any],
    *,
    axes: str | None = None,
    pixel_size: float | Sequence[float | None] | None = None,
    positions: Mapping[TileKey, Sequence[float]] | None = None,
    channels: Sequence[str] | None = None,
) -> TileSet:
    """Wrap arrays a notebook holds (NumPy, dask, Zarr: anything with ``shape``, ``dtype``
    and slicing) as tiles, keyed by (row, col).

    Parameters
    ----------
    arrays : mapping of (row, col) to array
        One array per tile, all of one shape and dtype, ``(..., Y, X)``.
    axes : str, optional
        Axis names from ``tczyx`` ending in ``yx``; by default ``yx``, ``zyx``, ``czyx`` or
        ``tczyx`` by the number of dimensions.
    pixel_size : float or sequence, optional
        Micrometres per pixel: one value for Y and X, or one per spatial axis (z, y, x that
        are present; None where unknown).
    positions : mapping of (row, col) to sequence of float, optional
        Stage positions in micrometres, one value per spatial axis.
    channels : sequence of str, optional
        Names of the ``c`` axis's channels.

    Examples
    --------
    >>> import numpy as np
    >>> arrays = {(0, 0): np.zeros((2, 8, 8), np.uint16), (0, 1): np.ones((2, 8, 8), np.uint16)}
    >>> tiles = from_arrays(arrays, axes="cyx", channels=["a", "b"])
    >>> tiles.axes, tiles.shape, tiles.sources[(0, 1)].channels
    ('cyx', (2, 8, 8), ('a', 'b'))
    """
    sources: dict[TileKey, TileSource] = {}
    for key, arr in arrays.items():
        name = f"array (row {key[0]}, col {key[1]})"
        shape = tuple(int(s) for s in getattr(arr, "shape", ()))
        if len(shape) < 2 or not hasattr(arr, "dtype"):
            raise TileError(f"{name}: an array tile needs a shape of at least (Y, X) and a dtype")
        tile_axes = check_axes(axes or DEFAULT_AXES.get(len(shape), ""), len(shape), name)
        spatial = "".join(a for a in tile_axes if a in "zyx")
        sources[key] = TileSource(
            name=name,
            shape=shape,
            dtype=np.dtype(arr.dtype),
            axes=tile_axes,
            reader=ArrayReader(arr),
            identity=tokenize(arr),
            pixel_size=_pixel_size(pixel_size, spatial, name),
            position=_position(positions, key, spatial, name),
            channels=_channels(channels, tile_axes, shape, name),
        )
    return tile_set(sources)


def _pixel_size(
    value: float | Sequence[float | None] | None, spatial: str, name: str
) -> tuple[float | None, ...] | None:
    if value is None:
        return None
    sizes: list[float | None]
    if isinstance(value, (int, float, np.number)):  # one value: Y and X
        sizes = [None] * (len(spatial) - 2)
        sizes += [float(value)] * 2
    else:
        sizes = [None if v is None else float(v) for v in value]
    if len(sizes) != len(spatial) or any(s is not None and not s > 0 for s in sizes):
        raise TileError(
            f"{name}: pixel size {value!r} must be one positive value, or one per axis of "
            f"{spatial!r} (micrometres per pixel)"
        )
    return tuple(sizes)


def _position(
    positions: Mapping[TileKey, Sequence[float]] | None, key: TileKey, spatial: str, name: str
) -> tuple[float, ...] | None:
    if positions is None:
        return None
    if key not in positions:
        raise TileError(f"{name}: no stage position was given for it")
    pos = tuple(float(v) for v in positions[key])
    if len(pos) != len(spatial) or not all(math.isfinite(v) for v in pos):
        raise TileError(
            f"{name}: stage position {positions[key]!r} must be {len(spatial)} finite values "
            f"(micrometres along {spatial!r})"
        )
    return pos


def _channels(
    names: Sequence[str] | None, axes: str, shape: tuple[int, ...], name: str
) -> tuple[str, ...] | None:
    if names is None:
        return None
    if "c" not in axes:
        raise TileError(f"{name}: channel names were given but its axes {axes!r} have no 'c'")
    n = shape[axes.index("c")]
    if len(names) != n or len(set(names)) != n:
        raise TileError(f"{name}: {len(names)} channel names for {n} channels: {list(names)}")
    return tuple(str(c) for c in names)
