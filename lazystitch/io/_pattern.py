"""Turn a filename pattern with ``{row}``/``{col}``/``{index}`` fields into tile paths."""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

from lazystitch._typing import TileKey
from lazystitch.errors import ConfigError

__all__ = ["ORDERS", "acquisition_index", "pattern_fields", "tile_paths"]

_ALLOWED = {"row", "col", "index"}
ORDERS = ("row", "column", "snake-row", "snake-column")


def acquisition_index(row: int, col: int, rows: int, cols: int, order: str = "row") -> int:
    """The 0-based acquisition index of tile (row, col) in a ``rows x cols`` grid.

    ``row``: row by row; ``column``: column by column; ``snake-row`` / ``snake-column``: every
    other row (column) runs backwards, as a meandering stage moves.

    Examples
    --------
    >>> [acquisition_index(r, c, 2, 3, "snake-row") for r in range(2) for c in range(3)]
    [0, 1, 2, 5, 4, 3]
    >>> acquisition_index(1, 0, 5, 5, "column")
    1
    """
    if order == "row":
        return row * cols + col
    if order == "column":
        return col * rows + row
    if order == "snake-row":
        return row * cols + (col if row % 2 == 0 else cols - 1 - col)
    if order == "snake-column":
        return col * rows + (row if col % 2 == 0 else rows - 1 - row)
    raise ConfigError(f"tiles.order {order!r} is not one of {', '.join(ORDERS)}")


def pattern_fields(pattern: str) -> set[str]:
    """Return the field names used in ``pattern``.

    Raises
    ------
    ConfigError
        If the pattern has an unknown field, a positional field, or neither ``{row}``+``{col}``
        nor ``{index}``.
    """
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    except ValueError as exc:
        raise ConfigError(f"tiles.pattern {pattern!r} is not a valid pattern: {exc}") from None
    unknown = fields - _ALLOWED
    if unknown:
        raise ConfigError(
            f"tiles.pattern {pattern!r} has unknown field(s) {sorted(unknown)}; "
            "allowed fields are {row}, {col} and {index}"
        )
    if not ({"row", "col"} <= fields or "index" in fields):
        raise ConfigError(
            f"tiles.pattern {pattern!r} must contain {{row}} and {{col}} (or {{index}}), "
            "e.g. 'tile_r{row:03d}_c{col:03d}.tif'"
        )
    return fields


def tile_paths(
    pattern: str | Path,
    keys: Iterable[TileKey],
    *,
    cols: int,
    rows: int | None = None,
    start: int = 0,
    order: str = "row",
) -> dict[TileKey, Path]:
    """Format ``pattern`` for each (row, col) key.

    Parameters
    ----------
    pattern : str or Path
        E.g. ``"tiles/tile_r{row:03d}_c{col:03d}.tif"`` or ``"img_p{index:02d}.tif"``.
    keys : iterable of (int, int)
        The (row, col) of each tile, 0-based.
    cols, rows : int
        Grid size (for ``{index}``; ``rows`` defaults to the largest row in ``keys`` + 1).
    start : int
        The number of the first row/column/index in file names (0 or 1 usually).
    order : {"row", "column", "snake-row", "snake-column"}
        How ``{index}`` counts the tiles (see :func:`acquisition_index`).

    Returns
    -------
    dict
        ``{(row, col): Path}``.
    """
    pattern = str(pattern)
    pattern_fields(pattern)
    keys = list(keys)
    rows = rows if rows is not None else max((r for r, _ in keys), default=0) + 1
    out: dict[TileKey, Path] = {}
    for r, c in keys:
        index = acquisition_index(r, c, rows, cols, order) + start
        try:
            name = pattern.format(row=r + start, col=c + start, index=index)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"tiles.pattern {pattern!r} cannot be formatted: {exc}") from None
        out[(r, c)] = Path(name)
    return out
