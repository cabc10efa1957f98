"""Synthetic specimens and tile sets with known positions, written as real TIFF files."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from lazystitch._typing import TileKey

__all__ = ["SyntheticTiles", "cut_tiles", "make_tiles", "specimen_image", "write_positions_csv"]


def specimen_image(
    shape: tuple[int, ...], *, dtype: str | np.dtype = "uint16", seed: int = 0
) -> np.ndarray:
    """A deterministic image with structure at many scales (blobs, fibres, texture).

    Parameters
    ----------
    shape : tuple of int
        ``(Y, X)`` or ``(..., Y, X)``; each leading plane differs.
    dtype : numpy dtype
        Integer images use most of their range; float images lie in [0, 1].
    """
    rng = np.random.default_rng(seed)
    *lead, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = []
    for _ in range(int(np.prod(lead)) if lead else 1):
        img = np.zeros((h, w), np.float32)
        for _ in range(max(8, h * w // 4000)):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            s = rng.uniform(2, 12)
            y0, y1 = int(max(cy - 4 * s, 0)), int(min(cy + 4 * s + 1, h))
            x0, x1 = int(max(cx - 4 * s, 0)), int(min(cx + 4 * s + 1, w))
            if y0 < y1 and x0 < x1:
                d2 = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2
                img[y0:y1, x0:x1] += rng.uniform(0.3, 1.0) * np.exp(-d2 / (2 * s * s))
        fx, fy = rng.uniform(0.01, 0.08, size=2)
        img += 0.15 * (1 + np.sin(fx * xx + fy * yy + rng.uniform(0, 6)))
        img += rng.uniform(0, 0.05, size=(h, w)).astype(np.float32)
        img /= img.max()
        planes.append(img)
    out = np.stack(planes).reshape(*lead, h, w) if lead else planes[0]
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        top = min(np.iinfo(dtype).max, 60000)
        return np.rint(out * top).astype(dtype)
    return out.astype(dtype)


def cut_tiles(
    image: np.ndarray, positions: dict[TileKey, tuple[int, int]], tile_yx: tuple[int, int]
) -> dict[TileKey, np.ndarray]:
    """Cut ``tile_yx`` tiles out of ``image`` at integer top-left ``positions``."""
    h, w = tile_yx
    return {
        k: np.ascontiguousarray(image[..., y : y + h, x : x + w]) for k, (y, x) in positions.items()
    }


def write_positions_csv(path: str | Path, positions: Mapping[TileKey, tuple[float, float]]) -> Path:
    """Write a ``row,col,y,x`` positions file."""
    path = Path(path)
    with path.open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["row", "col", "y", "x"])
        for (r, c), (y, x) in sorted(positions.items()):
            wr.writerow([r, c, y, x])
    return path


@dataclass(frozen=True)
class SyntheticTiles:
    """A tile set on disk and the truth it was cut from.

    ``image`` is the expected mosaic: the source image, 0 where no tile covers it.
    """

    directory: Path
    pattern: str
    positions_csv: Path
    image: np.ndarray
    positions: dict[TileKey, tuple[int, int]]
    tiles: dict[TileKey, np.ndarray]
    grid: tuple[int, int]
    tile_yx: tuple[int, int]
    overlap_px: tuple[int, int]


def make_tiles(
    directory: str | Path,
    *,
    grid: tuple[int, int] = (3, 4),
    tile_yx: tuple[int, int] = (128, 160),
    overlap: tuple[int, int] | int = (16, 20),
    jitter: int = 0,
    dtype: str | np.dtype = "uint16",
    lead: tuple[int, ...] = (),
    missing: Iterable[TileKey] = (),
    pattern: str = "tile_r{row:03d}_c{col:03d}.tif",
    seed: int = 0,
    image: np.ndarray | None = None,
    axes: str | None = None,
) -> SyntheticTiles:
    """Cut overlapping tiles from one image at known positions and write them as TIFFs.

    Parameters
    ----------
    directory : path
        Created if needed; receives the TIFFs and ``positions.csv`` (the true positions).
    grid : (rows, cols)
    tile_yx : (H, W)
    overlap : int or (int, int)
        Nominal overlap in px.
    jitter : int
        Each tile is moved off the nominal grid by a random whole number of px in
        ``[-jitter, jitter]`` per axis.
    dtype : numpy dtype
    lead : tuple of int
        Leading axes of each tile, e.g. ``(5,)`` for a 5-plane z-stack.
    missing : iterable of (row, col)
        Grid cells left without a tile (no file, no CSV row).
    pattern : str
        File name pattern inside ``directory``.
    seed : int
    image : ndarray, optional
        Cut from this image instead of a generated one (it must be large enough).
    axes : str, optional
        The TIFF axis letters recorded in each file (e.g. ``"CYX"``: the leading axis is
        channels); by default none (one leading axis reads as z).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    oy, ox = (overlap, overlap) if isinstance(overlap, (int, np.integer)) else overlap
    oy, ox = int(oy), int(ox)
    h, w = tile_yx
    rng = np.random.default_rng(seed + 1)
    missing = set(missing)
    nominal = {(r, c): (r * (h - oy), c * (w - ox)) for r in range(grid[0]) for c in range(grid[1])}
    keys = [k for k in nominal if k not in missing]
    raw = {
        k: tuple(int(v + rng.integers(-jitter, jitter + 1)) if jitter else v for v in nominal[k])
        for k in keys
    }
    y_min = min(y for y, _ in raw.values())
    x_min = min(x for _, x in raw.values())
    positions = {k: (y - y_min, x - x_min) for k, (y, x) in raw.items()}
    full = (max(y for y, _ in positions.values()) + h, max(x for _, x in positions.values()) + w)
    if image is None:
        image = specimen_image((*lead, *full), dtype=dtype, seed=seed)
    elif image.shape[-2] < full[0] or image.shape[-1] < full[1]:
        raise ValueError(f"image {image.shape} is smaller than the layout needs {full}")
    tiles = cut_tiles(image, positions, tile_yx)
    truth = np.zeros((*image.shape[:-2], *full), dtype=image.dtype)
    for y, x in positions.values():  # the mosaic is 0 where no tile covers it
        truth[..., y : y + h, x : x + w] = image[..., y : y + h, x : x + w]
    for (r, c), tile in tiles.items():
        tifffile.imwrite(
            directory / pattern.format(row=r, col=c),
            tile,
            photometric="minisblack",
            metadata={"axes": axes} if axes else {},
        )
    csv_path = write_positions_csv(directory / "positions.csv", positions)
    return SyntheticTiles(
        directory=directory,
        pattern=str(directory / pattern),
        positions_csv=csv_path,
        image=truth,
        positions=positions,
        tiles=tiles,
        grid=grid,
        tile_yx=tile_yx,
        overlap_px=(oy, ox),
    )
