"""A flat-field profile estimated from the tiles themselves (``--flatfield estimate``).

Vignetting is a smooth multiplicative falloff shared by every tile, while the specimen differs
from tile to tile. So: each sampled tile is reduced, in its own task on the cluster, to a small
grid of block means divided by its median (so bright and dim tiles weigh alike); the per-cell
median across tiles keeps what they share and drops most of the specimen; a low-order 2-D
polynomial fitted to its logarithm keeps only the smooth part (a Gaussian or cos^4 falloff is
a low-order polynomial in log). The profile is that fit at full resolution, scaled to mean 1,
one per channel. BaSiC (BaSiCPy) solves a richer model but pins an old SciPy, so it can only
ever be an optional extra; this estimate needs nothing beyond NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import dask
import numpy as np

from lazystitch._typing import TileKey
from lazystitch.io._source import RegionReader
from lazystitch.io._tiles import TileSet

__all__ = ["SAMPLE_TILES", "estimate_flatfield"]

SAMPLE_TILES = 64
"""At most this many tiles, spread evenly over the acquisition, are read for an estimate."""

GRID = 64
"""Each sampled tile is reduced to at most this many block means per side."""

DEGREE = 4
"""Degree of the 2-D polynomial fitted to the log of the shared falloff."""


def estimate_flatfield(
    tiles: TileSet, *, sample: int = SAMPLE_TILES, degree: int = DEGREE
) -> np.ndarray:
    """The flat-field profile of ``tiles``, float32,
    ``(Y, X)``, or ``(C, Y, X)`` when the tiles have a channel axis; mean 1 per channel.

    The sampled tiles are read (raw, uncorrected) on the active Client if there is one.

    Raises
    ------
    ValueError
        If fewer than 3 tiles hold any signal (a falloff cannot be told from the specimen).
    """
    raw = tiles.corrected(None)
    keys = _spread(raw.keys, sample)
    reader = raw.region_reader(keys)
    ny, nx = raw.tile_yx
    step = max(1, math.ceil(max(ny, nx) / GRID))
    c_axis = raw.axes.index("c") if "c" in raw.axes else None
    tasks = [
        dask.delayed(_reduce, pure=True)(reader, i, (ny, nx), step, c_axis)
        for i in range(len(keys))
    ]
    (small,) = dask.compute(tasks)
    cells = np.stack([s for s in small if s is not None])  # (tiles, C, gy, gx)
    if len(cells) < 3:
        raise ValueError(
            f"--flatfield estimate: only {len(cells)} of {len(keys)} sampled tiles hold any "
            "signal; give a measured profile (--flatfield FILE.tif) instead"
        )
    shared = np.median(cells, axis=0)  # (C, gy, gx)
    profiles = np.stack([_fit(plane, (ny, nx), step, degree) for plane in shared])
    return profiles[0] if c_axis is None else profiles


def _spread(keys: Sequence[TileKey], n: int) -> list[TileKey]:
    """``n`` keys evenly spread over ``keys`` (all of them when there are fewer)."""
    if len(keys) <= n:
        return list(keys)
    return [keys[i] for i in np.linspace(0, len(keys) - 1, n).round().astype(int)]


def _reduce(
    reader: RegionReader, index: int, tile_yx: tuple[int, int], step: int, c_axis: int | None
) -> np.ndarray | None:
    """A tile as (C, gy, gx) block means, each channel divided by its median; None for a
    tile with no signal in some channel."""
    ny, nx = tile_yx
    pixels = reader.read(index, (slice(0, ny), slice(0, nx)))[0].astype(np.float32)
    if c_axis is not None:
        pixels = np.moveaxis(pixels, c_axis, 0)
        pixels = pixels.reshape(pixels.shape[0], -1, ny, nx).mean(axis=1)
    else:
        pixels = pixels.reshape(-1, ny, nx).mean(axis=0, keepdims=True)
    gy, gx = ny // step, nx // step
    blocks = pixels[:, : gy * step, : gx * step].reshape(-1, gy, step, gx, step).mean(axis=(2, 4))
    level = np.median(blocks, axis=(1, 2), keepdims=True)
    if np.any(level <= 0):
        return None
    return blocks / level


def _fit(cells: np.ndarray, tile_yx: tuple[int, int], step: int, degree: int) -> np.ndarray:
    """The smooth falloff through a (gy, gx) grid of cell values, at full resolution, mean 1."""
    gy, gx = cells.shape
    ny, nx = tile_yx
    cy = (np.arange(gy) + 0.5) * step - 0.5  # cell centres in px
    cx = (np.arange(gx) + 0.5) * step - 0.5
    good = cells > 0
    yy, xx = np.meshgrid(_unit(cy, ny), _unit(cx, nx), indexing="ij")
    terms = [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]
    design = np.stack([yy[good] ** i * xx[good] ** j for i, j in terms], axis=1)
    coef, *_ = np.linalg.lstsq(design, np.log(cells[good]), rcond=None)
    fy, fx = _unit(np.arange(ny, dtype=np.float64), ny), _unit(np.arange(nx, dtype=np.float64), nx)
    log = sum(c * np.outer(fy**i, fx**j) for c, (i, j) in zip(coef, terms, strict=True))
    profile = np.exp(log)
    return (profile / profile.mean()).astype(np.float32)


def _unit(px: np.ndarray, n: int) -> np.ndarray:
    """Pixel coordinates mapped onto [-1, 1] across a tile of ``n`` px (a well-conditioned
    polynomial basis)."""
    return (2 * px - (n - 1)) / max(n - 1, 1)
