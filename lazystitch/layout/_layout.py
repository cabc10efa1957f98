"""Nominal tile geometry: a regular grid or explicit positions from a CSV file."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lazystitch._typing import TileKey
from lazystitch.errors import ConfigError, LayoutError

__all__ = [
    "Layout",
    "grid_layout",
    "orient_positions",
    "overlap_px",
    "positions_from_csv",
    "positions_layout",
    "read_positions_csv",
]


@dataclass(frozen=True)
class Layout:
    """Where each tile sits in the mosaic.

    Attributes
    ----------
    keys : tuple of (int, int)
        Each tile's (row, col) label, sorted (row-major); this is the order used by the
        ``first``/``last`` blend modes.
    positions : ndarray of shape (n_tiles, 2), float64
        Top-left corner (y, x) of each tile in pixels, in the coordinates they were given in;
        fractions place a tile between pixels (fusion interpolates it).
    tile_yx : (int, int)
        Tile height and width in pixels (the last two axes of every tile).
    kind : {"grid", "positions"}
        How the positions were obtained.
    description : dict
        JSON-able summary (grid shape, overlap, CSV path) recorded in the output's attributes.
    """

    keys: tuple[TileKey, ...]
    positions: np.ndarray
    tile_yx: tuple[int, int]
    kind: str
    description: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64).reshape(-1, 2)
        if len(pos) != len(self.keys):
            raise ValueError(f"{len(self.keys)} keys but {len(pos)} positions")
        if len(self.keys) == 0:
            raise LayoutError("the layout has no tiles")
        if not np.isfinite(pos).all():
            raise LayoutError("tile positions must be finite numbers")
        if len(set(self.keys)) != len(self.keys):
            raise LayoutError("two tiles have the same (row, col)")
        order = sorted(range(len(self.keys)), key=lambda i: self.keys[i])
        object.__setattr__(self, "keys", tuple(self.keys[i] for i in order))
        object.__setattr__(self, "positions", pos[order])

    def _snapped(self) -> np.ndarray:
        """Positions, with values within 1e-6 px of a whole pixel made whole."""
        near = np.rint(self.positions)
        return np.where(np.abs(self.positions - near) < 1e-6, near, self.positions)

    @property
    def pixel_positions(self) -> np.ndarray:
        """Whole-pixel placement: the floor of each position, shifted so that the minimum
        (y, x) is (0, 0). With :attr:`fractions` this is the exact position.

        Returns
        -------
        ndarray of shape (n_tiles, 2), int64
        """
        whole = np.floor(self._snapped()).astype(np.int64)
        return whole - whole.min(axis=0)

    @property
    def fractions(self) -> np.ndarray:
        """Sub-pixel part of each position, in [0, 1); all 0 for whole-pixel positions.

        Returns
        -------
        ndarray of shape (n_tiles, 2), float64
        """
        snapped = self._snapped()
        return snapped - np.floor(snapped)

    @property
    def origin(self) -> tuple[int, int]:
        """The (y, x), in the input coordinates, of the mosaic's pixel (0, 0)."""
        whole = np.floor(self._snapped()).astype(np.int64)
        return tuple(int(v) for v in whole.min(axis=0))  # type: ignore[return-value]

    @property
    def mosaic_yx(self) -> tuple[int, int]:
        """Height and width of the mosaic: the bounding box of all tiles."""
        end = self.pixel_positions.max(axis=0) + np.asarray(self.tile_yx)
        return int(end[0]), int(end[1])


def overlap_px(overlap: float | Sequence[float], tile_yx: tuple[int, int]) -> tuple[int, int]:
    """Convert an overlap given as a fraction (< 1) or in pixels (>= 1) to pixels per axis.

    Parameters
    ----------
    overlap : float or (float, float)
        One value for both axes, or (Y, X).
    tile_yx : (int, int)
        Tile height and width.
    """
    values = (
        [float(overlap)] * 2
        if isinstance(overlap, (int, float, np.number))
        else [float(v) for v in overlap]
    )
    if len(values) != 2:
        raise ConfigError(f"layout.overlap must be one value or two (Y,X); got {overlap!r}")
    out = []
    for v, size, axis in zip(values, tile_yx, "YX", strict=True):
        if not math.isfinite(v) or v < 0:
            raise ConfigError(f"layout.overlap {axis} must be >= 0; got {v}")
        px = round(v * size) if v < 1 else round(v)
        if px >= size:
            raise ConfigError(
                f"layout.overlap {axis} is {px} px but tiles are only {size} px along {axis}: "
                "it leaves no step between tiles"
            )
        out.append(px)
    return out[0], out[1]


def grid_layout(
    rows: int, cols: int, tile_yx: tuple[int, int], overlap: float | Sequence[float]
) -> Layout:
    """A regular ``rows x cols`` grid in raster order, neighbours overlapping by ``overlap``.

    Examples
    --------
    >>> lay = grid_layout(2, 3, (100, 100), 0.1)
    >>> lay.positions[:3].tolist()
    [[0.0, 0.0], [0.0, 90.0], [0.0, 180.0]]
    >>> lay.mosaic_yx
    (190, 280)
    """
    if rows < 1 or cols < 1:
        raise ConfigError(f"layout.grid must be at least 1x1; got {rows}x{cols}")
    oy, ox = overlap_px(overlap, tile_yx)
    step = np.array([tile_yx[0] - oy, tile_yx[1] - ox], dtype=np.float64)
    keys = [(r, c) for r in range(rows) for c in range(cols)]
    positions = np.array(keys, dtype=np.float64) * step
    return Layout(
        keys=tuple(keys),
        positions=positions,
        tile_yx=tile_yx,
        kind="grid",
        description={"kind": "grid", "grid": [rows, cols], "overlap_px": [oy, ox]},
    )


def read_positions_csv(path: str | Path) -> tuple[list[TileKey], np.ndarray]:
    """Read a positions CSV with header ``row,col,y,x`` (extra columns are ignored).

    ``y, x`` are a tile's top-left corner in pixels; floats are accepted.

    Raises
    ------
    ConfigError
        Naming the file and line of a missing column, a bad number or a duplicate tile.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"layout.positions: file {path} does not exist")
    keys: list[TileKey] = []
    values: list[tuple[float, float]] = []
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets write a byte-order mark
    except UnicodeDecodeError:
        raise ConfigError(f"positions file {path} is not a UTF-8 text (CSV) file") from None
    if "\x00" in text:
        raise ConfigError(f"positions file {path} is not a text (CSV) file")
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("row", "col", "y", "x") if c not in header]
        if missing:
            raise ConfigError(
                f"positions file {path} needs a header row 'row,col,y,x'; missing {missing} "
                f"(found {header})"
            )
        reader.fieldnames = header
        seen: dict[TileKey, int] = {}
        for lineno, rec in enumerate(reader, start=2):
            try:
                key = (int(rec["row"]), int(rec["col"]))
                y, x = float(rec["y"]), float(rec["x"])
            except (TypeError, ValueError):
                raise ConfigError(
                    f"positions file {path} line {lineno}: expected integers row,col and "
                    f"numbers y,x; got {dict(rec)}"
                ) from None
            if key[0] < 0 or key[1] < 0:
                raise ConfigError(f"positions file {path} line {lineno}: row/col must be >= 0")
            if not (math.isfinite(y) and math.isfinite(x)):
                raise ConfigError(f"positions file {path} line {lineno}: y, x must be finite")
            if key in seen:
                raise ConfigError(
                    f"positions file {path} line {lineno}: tile row={key[0]} col={key[1]} "
                    f"already given on line {seen[key]}"
                )
            seen[key] = lineno
            keys.append(key)
            values.append((y, x))
    if not keys:
        raise ConfigError(f"positions file {path} lists no tiles")
    return keys, np.array(values, dtype=np.float64)


AXES = ("swap_xy", "flip_y", "flip_x")
"""How stage positions turn into the image's axes, in the order they apply."""


def orient_positions(
    positions: np.ndarray, *, swap_xy: bool = False, flip_y: bool = False, flip_x: bool = False
) -> np.ndarray:
    """Stage positions (y, x) in the image's axes: y and x exchanged first (``swap_xy``), then
    y and/or x negated (``flip_y``, ``flip_x``: that stage axis runs against the image's, e.g.
    row 0 at the bottom). ASHLAR's ``--flip-y``/``--flip-x`` answer the same mix-ups.

    Examples
    --------
    >>> orient_positions(np.array([[0.0, 5.0], [10.0, 5.0]]), flip_y=True).tolist()
    [[-0.0, 5.0], [-10.0, 5.0]]
    """
    out = np.array(positions, dtype=np.float64).reshape(-1, 2)
    if swap_xy:
        out = out[:, ::-1].copy()
    if flip_y:
        out[:, 0] = -out[:, 0]
    if flip_x:
        out[:, 1] = -out[:, 1]
    return out


def grid_keys(positions: np.ndarray, tile_yx: tuple[int, int]) -> list[TileKey] | None:
    """(row, col) of tiles known only by their positions (stage metadata): tiles whose y
    (x) lie within half a tile of the next one's share a row (column). None when that does
    not give every tile its own cell (an irregular layout).

    Registration links each tile with its right and lower grid neighbour, so tiles that an
    acquisition numbers 0, 1, 2... along one row need their rows and columns back.

    Examples
    --------
    >>> grid_keys(np.array([[0, 0], [3, 90], [95, 2], [92, 88]]), (100, 100))
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    bands = [_bands(pos[:, axis], tile_yx[axis] / 2) for axis in (0, 1)]
    keys = [(int(r), int(c)) for r, c in zip(*bands, strict=True)]
    return keys if len(set(keys)) == len(keys) else None


def _bands(values: np.ndarray, gap: float) -> np.ndarray:
    """Each value's band: sorted values more than ``gap`` apart start a new band."""
    order = np.argsort(values, kind="stable")
    steps = np.diff(values[order]) > gap
    out = np.empty(len(values), dtype=np.int64)
    out[order] = np.concatenate([[0], np.cumsum(steps)])
    return out


def positions_layout(
    keys: Sequence[TileKey],
    positions: np.ndarray,
    tile_yx: tuple[int, int],
    source: str | Path,
    *,
    swap_xy: bool = False,
    flip_y: bool = False,
    flip_x: bool = False,
) -> Layout:
    """A layout from explicit positions (e.g. the output of :func:`read_positions_csv`), turned
    into the image's axes by :func:`orient_positions`."""
    axes = {"swap_xy": swap_xy, "flip_y": flip_y, "flip_x": flip_x}
    return Layout(
        keys=tuple(keys),
        positions=orient_positions(positions, **axes),
        tile_yx=tile_yx,
        kind="positions",
        description={"kind": "positions", "csv": str(source), "axes": axes},
    )


def positions_from_csv(path: str | Path, tile_yx: tuple[int, int]) -> Layout:
    """A layout from a positions CSV (see :func:`read_positions_csv`); grid cells may be missing."""
    return positions_layout(*read_positions_csv(path), tile_yx, path)
