"""The check every tile reader passes: what registration and fusion rely on of a tile source."""

from __future__ import annotations

import gc
import math
import os
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

from lazystitch.errors import TileError
from lazystitch.io import TileSet, TileSource, check_axes

__all__ = ["check_tile_set"]


def _fail(src: TileSource, what: str) -> None:
    raise AssertionError(f"tile source {src.name}: {what}")


def _open_fds(paths: set[str]) -> int | None:
    """How many of this process's descriptors are open on ``paths`` (None: not Linux).
    Only the tiles' own files count: other threads may open and close files meanwhile."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    n = 0
    for fd in fds:
        try:
            n += os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")) in paths
        except OSError:  # closed meanwhile
            continue
    return n


def check_tile_set(
    tiles: TileSet, expected: Mapping[Any, np.ndarray] | None = None, sample: int = 4
) -> None:
    """Check a reader's :class:`~lazystitch.io.TileSet` against the tile source protocol.

    For every tile: its shape, dtype and axes agree with the set's and with each other, its
    pixel size, stage position and channel names have one entry per axis they describe;
    for ``sample`` tiles (or all, with ``expected``): the reader survives pickling, reads the
    whole tile with the declared shape and dtype, reads windows (edges, single pixels, the
    middle) equal to the whole tile's, gives the caller its own array without ``view``, and
    leaves no file open. ``expected`` (optional): the true pixels of each tile by key.

    Raises
    ------
    AssertionError
        Naming the tile and what is wrong.
    """
    keys = list(tiles.sources)
    if not keys:
        raise AssertionError("the tile set is empty")
    checked = keys if expected is not None else keys[: max(1, sample)]
    for key in keys:
        src = tiles.sources[key]
        _check_header(src, tiles)
    paths = {os.path.realpath(p) for k in checked if (p := tiles.sources[k].path) is not None}
    fds = _open_fds(paths)
    for key in checked:
        src = tiles.sources[key]
        _check_reads(src, None if expected is None else np.asarray(expected[key]))
    gc.collect()
    after = _open_fds(paths)
    if fds is not None and after is not None and after > fds:
        raise AssertionError(f"reading left {after - fds} tile file(s) open")


def _check_header(src: TileSource, tiles: TileSet) -> None:
    if tuple(src.shape) != tuple(tiles.shape) or np.dtype(src.dtype) != np.dtype(tiles.dtype):
        _fail(src, f"{src.shape} {src.dtype} differs from the set's {tiles.shape} {tiles.dtype}")
    try:
        check_axes(src.axes, len(src.shape), "")
    except TileError as exc:
        _fail(src, str(exc).lstrip(": "))
    spatial = src.spatial_axes
    if src.pixel_size is not None and (
        len(src.pixel_size) != len(spatial)
        or any(p is not None and not (math.isfinite(p) and p > 0) for p in src.pixel_size)
    ):
        _fail(src, f"pixel size {src.pixel_size} is not one positive value per axis of {spatial!r}")
    if src.position is not None and (
        len(src.position) != len(spatial) or not all(math.isfinite(v) for v in src.position)
    ):
        _fail(src, f"stage position {src.position} is not one finite value per axis of {spatial!r}")
    if src.channels is not None and (
        "c" not in src.axes or len(src.channels) != src.shape[src.axes.index("c")]
    ):
        _fail(src, f"channel names {src.channels} do not match a 'c' axis of {src.axes!r}")
    if not isinstance(src.identity, str) or not src.identity:
        _fail(src, "has no identity (what a resumed run compares)")


def _cut(win: tuple[slice, slice]) -> tuple:
    return (Ellipsis, *win)


def _check_reads(src: TileSource, truth: np.ndarray | None) -> None:
    try:
        reader = pickle.loads(pickle.dumps(src.reader))
    except Exception as exc:  # a handle or a lambda: it cannot reach a worker
        _fail(src, f"its reader does not pickle: {exc}")
    h, w = src.shape[-2:]
    whole, nbytes = reader.read((slice(0, h), slice(0, w)))
    if tuple(whole.shape) != tuple(src.shape) or whole.dtype != np.dtype(src.dtype):
        _fail(src, f"read {whole.shape} {whole.dtype}, declared {src.shape} {src.dtype}")
    if not isinstance(nbytes, int) or nbytes < 0:
        _fail(src, f"reported {nbytes!r} bytes read")
    if truth is not None and not np.array_equal(whole, truth):
        _fail(src, "its pixels differ from the tile's true pixels")
    windows = [
        (slice(0, 1), slice(0, 1)),
        (slice(h - 1, h), slice(w - 1, w)),
        (slice(h // 3, h - h // 4), slice(w // 5, w - w // 3)),
        (slice(0, h), slice(w // 2, w)),
        (slice(h // 2, h), slice(0, w)),
    ]
    for win in windows:
        for view in (True, False):
            part, _ = reader.read(win, view=view)
            if not np.array_equal(part, whole[_cut(win)]):
                _fail(src, f"window {win} (view={view}) differs from the whole tile's")
    own, _ = reader.read(windows[2], view=False)
    if own.size:
        try:
            own[(0,) * own.ndim] = own[(0,) * own.ndim] + 1
        except ValueError:
            _fail(src, "a read without view gave a read-only array")
        again, _ = reader.read(windows[2], view=True)
        if not np.array_equal(again, whole[_cut(windows[2])]):
            _fail(src, "writing to a read without view changed the tile")
    del whole, own
