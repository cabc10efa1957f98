"""A flat-field profile estimated from the tiles themselves (``--flatfield estimate``).

Vignetting is a smooth multiplicative falloff F shared by every tile. Where two tiles overlap
they image the same specimen S, so at a point p of tile a that is point p - d of tile b,
``log a(p) - log b(p - d) = log F(p) - log F(p - d)``: the specimen cancels, whatever it is.
With log F a low-order 2-D polynomial, every overlap pixel is one linear equation in its
coefficients; the overlaps of a scan pin them all down (horizontal neighbours the x-terms,
vertical ones the y-terms), up to the constant, which the profile's mean of 1 fixes. Each
neighbouring pair is one task on the cluster: it reads the two overlap windows (raw), takes
block means (a stage position a few pixels off then barely matters) and returns a few
thousand equations; the client solves them by least squares, reweighted to downweight the
blocks a misplaced edge or a saturated pixel spoils.

Tiles with no overlap to use (a layout without neighbours) fall back to the per-pixel median
across a sample of tiles, each divided by its own median: what tiles share, which leaks the
specimen when there are few tiles. BaSiC (BaSiCPy) solves a richer model but pins an old
SciPy, so it can only ever be an optional extra; this needs nothing beyond NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dask
import numpy as np

from lazystitch._typing import TileKey
from lazystitch.io._correct import Correction
from lazystitch.io._source import RegionReader
from lazystitch.io._tiles import TileSet

if TYPE_CHECKING:
    from lazystitch.layout import Layout

__all__ = ["SAMPLE_TILES", "estimate_flatfield"]

SAMPLE_TILES = 64
"""At most this many tiles, spread evenly over the acquisition, are read for an estimate."""

GRID = 64
"""Each sampled tile is reduced to at most this many block means per side."""

DEGREE = 4
"""Degree of the 2-D polynomial fitted to the log of the shared falloff."""


def estimate_flatfield(
    tiles: TileSet,
    layout: Layout | None = None,
    *,
    sample: int = SAMPLE_TILES,
    degree: int = DEGREE,
) -> np.ndarray:
    """The flat-field profile of ``tiles`` placed by ``layout``, float32, ``(Y, X)``, or
    ``(C, Y, X)`` when the tiles have a channel axis; mean 1 per channel.

    From the overlaps of neighbouring tiles when ``layout`` has any, else from the median of
    a sample of tiles. Tiles are read raw (only a dark-field subtracted, if the tiles have
    one), on the active Client if there is one.

    Raises
    ------
    ValueError
        If fewer than 3 tiles hold any signal (a falloff cannot be told from the specimen).
    """
    dark = tiles.correction.darkfield if tiles.correction is not None else None
    raw = tiles.corrected(None if dark is None else Correction(tiles.sources_dtype, darkfield=dark))
    if layout is not None:
        pairs = _overlaps(layout, sample * 2)
        if pairs:
            return _from_overlaps(raw, layout, pairs, degree)
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


BLOCK = 8
"""Overlap windows are compared as block means of this many px per side."""

MIN_OVERLAP = 2 * BLOCK
"""Overlaps narrower than this (px) are not used."""


def _overlaps(layout: Layout, most: int) -> list[tuple[TileKey, TileKey, tuple[int, int]]]:
    """Up to ``most`` right and lower neighbour pairs, spread over the scan, with b's offset
    from a in whole px, that overlap by at least :data:`MIN_OVERLAP` both ways."""
    place = dict(zip(layout.keys, layout.positions, strict=True))
    h, w = layout.tile_yx
    found = []
    for a in layout.keys:
        for b in ((a[0], a[1] + 1), (a[0] + 1, a[1])):
            if b in place:
                dy, dx = (int(v) for v in np.rint(place[b] - place[a]))
                if h - abs(dy) >= MIN_OVERLAP and w - abs(dx) >= MIN_OVERLAP:
                    found.append((a, b, (dy, dx)))
    if len(found) <= most:
        return found
    return [found[i] for i in np.linspace(0, len(found) - 1, most).round().astype(int)]


def _from_overlaps(raw: TileSet, layout: Layout, pairs: list, degree: int) -> np.ndarray:
    keys = list(dict.fromkeys(k for a, b, _ in pairs for k in (a, b)))
    place = {k: i for i, k in enumerate(keys)}
    reader = raw.region_reader(keys)
    c_axis = raw.axes.index("c") if "c" in raw.axes else None
    info = np.iinfo(raw.dtype) if np.issubdtype(raw.dtype, np.integer) else None
    top = float(info.max) if info is not None else np.inf
    tasks = [
        dask.delayed(_pair_equations, pure=True)(
            reader, place[a], place[b], d, raw.tile_yx, c_axis, top
        )
        for a, b, d in pairs
    ]
    (results,) = dask.compute(tasks)
    parts = [r for r in results if r is not None]
    if not parts:
        raise ValueError(
            "--flatfield estimate: no overlap between neighbouring tiles holds signal; give a "
            "measured profile (--flatfield FILE.tif) instead"
        )
    pa = np.concatenate([p[0] for p in parts])  # (n, 2) centres in a's px
    pb = np.concatenate([p[1] for p in parts])
    diff = np.concatenate([p[2] for p in parts], axis=1)  # (C, n)
    ny, nx = raw.tile_yx
    terms = [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i) if i + j > 0]
    design = _basis(pa, terms, ny, nx) - _basis(pb, terms, ny, nx)
    profiles = np.stack([_solve(design, row, terms, (ny, nx)) for row in diff])
    return profiles[0] if c_axis is None else profiles


def _pair_equations(
    reader: RegionReader,
    ia: int,
    ib: int,
    d: tuple[int, int],
    tile_yx: tuple[int, int],
    c_axis: int | None,
    top: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Block centres in a's and b's px and, per channel, log a - log b over the blocks of
    their overlap (blocks with a pixel at 0 or saturated left out); None if none is left."""
    d = _aligned(reader, ia, ib, d, tile_yx, c_axis)
    windows = _windows(d, tile_yx)
    oh = (windows[0][0].stop - windows[0][0].start) // BLOCK * BLOCK
    ow = (windows[0][1].stop - windows[0][1].start) // BLOCK * BLOCK
    (ya, xa), (yb, xb) = ((w[0].start, w[1].start) for w in windows)
    means, ok = [], None
    for i, (y0, x0) in ((ia, (ya, xa)), (ib, (yb, xb))):
        px = reader.read(i, (slice(y0, y0 + oh), slice(x0, x0 + ow)))[0].astype(np.float64)
        px = _per_channel(px, c_axis)  # (C, oh, ow)
        good = ((px > 0) & (px < top)).all(axis=0)
        blocks = px.reshape(len(px), oh // BLOCK, BLOCK, ow // BLOCK, BLOCK).mean(axis=(2, 4))
        fine = good.reshape(oh // BLOCK, BLOCK, ow // BLOCK, BLOCK).all(axis=(1, 3))
        means.append(blocks)
        ok = fine if ok is None else ok & fine
    assert ok is not None
    if not ok.any():
        return None
    gy, gx = np.nonzero(ok)
    cy, cx = gy * BLOCK + (BLOCK - 1) / 2, gx * BLOCK + (BLOCK - 1) / 2
    centres_a = np.stack([cy + ya, cx + xa], axis=1)
    centres_b = np.stack([cy + yb, cx + xb], axis=1)
    diff = np.log(means[0][:, gy, gx]) - np.log(means[1][:, gy, gx])
    return centres_a, centres_b, diff


def _windows(d: tuple[int, int], tile_yx: tuple[int, int]) -> tuple[tuple[slice, slice], ...]:
    """The overlap of tile a and tile b (b's offset from a: ``d``) in each tile's px."""
    (ny, nx), (dy, dx) = tile_yx, d
    oh, ow = ny - abs(dy), nx - abs(dx)
    ya, yb = (dy, 0) if dy >= 0 else (0, -dy)
    xa, xb = (dx, 0) if dx >= 0 else (0, -dx)
    return (slice(ya, ya + oh), slice(xa, xa + ow)), (slice(yb, yb + oh), slice(xb, xb + ow))


def _aligned(
    reader: RegionReader,
    ia: int,
    ib: int,
    d: tuple[int, int],
    tile_yx: tuple[int, int],
    c_axis: int | None,
) -> tuple[int, int]:
    """``d`` corrected by the whole-pixel shift that best aligns the two overlap windows
    (phase correlation; stage positions are often several px off), if the overlap is left
    at least :data:`MIN_OVERLAP` wide."""
    from skimage.registration import phase_cross_correlation

    wa, wb = _windows(d, tile_yx)
    a = _per_channel(reader.read(ia, wa)[0].astype(np.float64), c_axis).mean(axis=0)
    b = _per_channel(reader.read(ib, wb)[0].astype(np.float64), c_axis).mean(axis=0)
    shift = phase_cross_correlation(a, b, normalization=None)[0]
    fixed = (int(d[0] + round(shift[0])), int(d[1] + round(shift[1])))
    ny, nx = tile_yx
    if min(ny - abs(fixed[0]), nx - abs(fixed[1])) < MIN_OVERLAP:
        return d
    return fixed


def _per_channel(pixels: np.ndarray, c_axis: int | None) -> np.ndarray:
    """(..., y, x) as (C, y, x): the c axis first, other leading axes averaged."""
    ny, nx = pixels.shape[-2:]
    if c_axis is None:
        return pixels.reshape(-1, ny, nx).mean(axis=0, keepdims=True)
    moved = np.moveaxis(pixels, c_axis, 0)
    return moved.reshape(moved.shape[0], -1, ny, nx).mean(axis=1)


def _basis(points: np.ndarray, terms: list[tuple[int, int]], ny: int, nx: int) -> np.ndarray:
    yy, xx = _unit(points[:, 0], ny), _unit(points[:, 1], nx)
    return np.stack([yy**i * xx**j for i, j in terms], axis=1)


def _solve(
    design: np.ndarray, diff: np.ndarray, terms: list[tuple[int, int]], tile_yx: tuple[int, int]
) -> np.ndarray:
    """The profile whose log differences best explain ``diff``: least squares, reweighted
    (Huber) so that spoilt blocks count little; mean 1."""
    weight = np.ones(len(diff))
    coef = np.zeros(design.shape[1])
    for _ in range(8):
        sw = np.sqrt(weight)
        coef, *_ = np.linalg.lstsq(design * sw[:, None], diff * sw, rcond=None)
        resid = np.abs(design @ coef - diff)
        scale = 1.4826 * float(np.median(resid)) + 1e-12
        weight = np.minimum(1.0, 1.345 * scale / np.maximum(resid, 1e-12))
    ny, nx = tile_yx
    fy, fx = _unit(np.arange(ny, dtype=np.float64), ny), _unit(np.arange(nx, dtype=np.float64), nx)
    log = sum(c * np.outer(fy**i, fx**j) for c, (i, j) in zip(coef, terms, strict=True))
    profile = np.exp(log - np.max(log))
    return (profile / profile.mean()).astype(np.float32)
