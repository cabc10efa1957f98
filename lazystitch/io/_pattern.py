"""Turn a filename pattern with ``{row}``/``{col}``/``{index}`` fields into tile paths."""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

from lazystitch._typing import TileKey
from lazystitch.errors import ConfigError

__all__ = ["pattern_fields", "tile_paths"]

_ALLOWED = {"row", "col", "index"}


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
    pattern: str | Path, keys: Iterable[TileKey], *, cols: int, start: int = 0
) -> dict[TileKey, Path]:
    """Format ``pattern`` for each (row, col) key.

    Parameters
    ----------
    pattern : str or Path
        E.g. ``"tiles/tile_r{row:03d}_c{col:03d}.tif"``. ``{index}`` is the row-major index
        ``row * cols + col``.
    keys : iterable of (int, int)
        The (row, col) of each tile, 0-based.
    cols : int
        Number of grid columns (for ``{index}``).
    start : int
        The number of the first row/column/index in file names (0 or 1 usually).

    Returns
    -------
    dict
        ``{(row, col): Path}``.
    """
    pattern = str(pattern)
    pattern_fields(pattern)
    out: dict[TileKey, Path] = {}
    for r, c in keys:
        try:
            name = pattern.format(row=r + start, col=c + start, index=r * cols + c + start)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"tiles.pattern {pattern!r} cannot be formatted: {exc}") from None
        out[(r, c)] = Path(name)
    return out
