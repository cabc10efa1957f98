"""Tile sets for registration tests: hidden sub-pixel positions, stage jitter, noise, vignetting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from lazystitch._typing import TileKey
from lazystitch.testing._synthetic import specimen_image

__all__ = ["RegistrationTiles", "make_registration_tiles"]


@dataclass(frozen=True)
class RegistrationTiles:
    """Tiles on disk, their nominal grid, and the hidden truth."""

    directory: Path
    pattern: str
    grid: tuple[int, int]
    tile_yx: tuple[int, int]
    overlap_px: tuple[int, int]
    true_positions: dict[TileKey, tuple[float, float]]
    empty: frozenset[TileKey]
    image: np.ndarray


def make_registration_tiles(
    directory: str | Path,
    *,
    grid: tuple[int, int] = (4, 4),
    tile_yx: tuple[int, int] = (256, 256),
    overlap: float = 0.1,
    jitter: float = 15.0,
    photons: float = 2000.0,
    read_noise: float = 3.0,
    vignetting: float = 0.3,
    empty: Iterable[TileKey] = (),
    seed: int = 0,
    pattern: str = "tile_r{row:03d}_c{col:03d}.tif",
    image: np.ndarray | None = None,
) -> RegistrationTiles:
    """Cut uint16 tiles from one image at hidden sub-pixel positions and write them as TIFFs.

    Parameters
    ----------
    grid, tile_yx : (int, int)
    overlap : float
        Nominal overlap as a fraction of the tile.
    jitter : float
        Each tile's true position is its nominal grid position plus a uniform random offset in
        ``[-jitter, jitter]`` px per axis (sub-pixel).
    photons : float
        Poisson noise: the brightest pixel collects this many photons.
    read_noise : float
        Gaussian noise (sigma, in the same units).
    vignetting : float
        Each tile is darker towards its corners by up to this fraction.
    empty : iterable of (row, col)
        Tiles with no specimen in them: background and noise only.
    seed : int
    image : 2-D array, optional
        The specimen to cut the tiles from (a real image, any dtype; scaled to [0, 1] and
        repeated periodically out to the mosaic's extent where it is smaller: not mirrored,
        since a mirrored specimen matches the flipped strips registration uses as decoys).
        By default a synthetic specimen (:func:`specimen_image`).
    """
    from scipy import ndimage

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = tile_yx
    oy, ox = round(overlap * h), round(overlap * w)
    pad = int(np.ceil(jitter)) + 4
    true = {
        (r, c): (
            pad + r * (h - oy) + rng.uniform(-jitter, jitter),
            pad + c * (w - ox) + rng.uniform(-jitter, jitter),
        )
        for r in range(grid[0])
        for c in range(grid[1])
    }
    full = (grid[0] * (h - oy) + oy + 2 * pad, grid[1] * (w - ox) + ox + 2 * pad)
    if image is None:
        image = specimen_image(full, dtype="float32", seed=seed).astype(np.float64)
    else:
        image = _scaled_repeated(image, full)
    yy, xx = np.mgrid[0:h, 0:w]
    rr = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2
    vignette = 1 - vignetting * rr / 2
    empty = frozenset(empty)
    for key, (y, x) in true.items():
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        region = image[y0 : y0 + h + 2, x0 : x0 + w + 2]
        tile = ndimage.shift(region, (y0 - y, x0 - x), order=3, mode="nearest")[:h, :w]
        if key in empty:
            tile = np.full((h, w), 0.05)
        counts = rng.poisson(np.clip(tile * vignette, 0, None) * photons).astype(np.float64)
        counts += rng.normal(0, read_noise, size=counts.shape) + 100  # camera offset
        tifffile.imwrite(
            directory / pattern.format(row=key[0], col=key[1]),
            np.clip(np.rint(counts), 0, 65535).astype(np.uint16),
            photometric="minisblack",
        )
    return RegistrationTiles(
        directory=directory,
        pattern=str(directory / pattern),
        grid=grid,
        tile_yx=tile_yx,
        overlap_px=(oy, ox),
        true_positions=true,
        empty=empty,
        image=image,
    )


def _scaled_repeated(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` (2-D) scaled to [0, 1] in float64 and repeated periodically out to ``shape``."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"the specimen image must be 2-D, got shape {img.shape}")
    lo, hi = np.percentile(img, [0.1, 99.9])
    img = np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)
    return img[np.ix_(*(np.arange(m) % n for n, m in zip(img.shape, shape, strict=True)))]
