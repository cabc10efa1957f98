"""Turn a filename pattern with ``{row}``/``{col}``/``{index}`` fields into tile paths."""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterable
from pathlib import Path

from lazystitch._typing import TileKey
from lazystitch.errors import ConfigError

__all__ = ["ORDERS", "acquisition_index", "discover_keys", "pattern_fields", "tile_paths"]

_ALLOWED = {"row", "col", "index", "channel"}
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
    from lazystitch.io._members import is_members

    if is_members(pattern):  # every member of a container, numbered as {index} numbers
        return {"index"}
    try:
        fields = _fields(pattern)
    except ValueError as exc:
        raise ConfigError(f"tiles.pattern {pattern!r} is not a valid pattern: {exc}") from None
    unknown = fields - _ALLOWED
    if unknown:
        raise ConfigError(
            f"tiles.pattern {pattern!r} has unknown field(s) {sorted(unknown)}; "
            "allowed fields are {row}, {col}, {index} and {channel}"
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
    channel: str | None = None,
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
    channel : str, optional
        The value of a ``{channel}`` field (a number where its format spec asks for one).

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
        fields = {"row": r + start, "col": c + start, "index": index}
        try:
            if channel is not None:
                from lazystitch.io._channels import format_channel

                name = format_channel(pattern, channel, **fields)
            else:
                name = pattern.format(**fields)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"tiles.pattern {pattern!r} cannot be formatted: {exc}") from None
        out[(r, c)] = Path(name)
    return out


def discover_keys(pattern: str | Path, *, start: int = 0) -> list[TileKey]:
    """The (row, col) of every tile file that ``pattern`` matches on disk, for layouts that
    come from the files themselves (stage positions in their metadata).

    A ``{row}``/``{col}`` pattern gives each file's (row, col) (less ``start``); an
    ``{index}`` pattern numbers the files along one row, (0, index - start). Only the file
    name part may hold fields.

    Raises
    ------
    ConfigError
        If a folder in the pattern has fields, or no file matches.
    """
    from lazystitch.io._members import is_members, list_members

    pattern = str(pattern)
    fields = pattern_fields(pattern)
    if is_members(pattern):
        return [(0, i) for i in range(len(list_members(pattern)))]
    folder, name = os.path.split(pattern)
    if _fields(folder):
        raise ConfigError(
            f"tiles.pattern {pattern!r}: with positions from the files' metadata only the "
            "file name may hold {row}, {col} or {index}, not the folder"
        )
    regex, seen = [], set()
    for literal, field, _spec, _conv in string.Formatter().parse(name):
        regex.append(re.escape(literal))
        if field == "channel":  # each channel's file names the same tile
            regex.append(".+?")
        elif field is not None:  # a field repeated in the name is matched, not captured again
            regex.append("[0-9]+" if field in seen else f"(?P<{field}>[0-9]+)")
            seen.add(field)
    matcher = re.compile("".join(regex) + r"\Z")
    keys: list[TileKey] = []
    for entry in sorted(os.listdir(folder or ".")) if os.path.isdir(folder or ".") else []:
        m = matcher.match(entry)
        if m is None:
            continue
        if "index" in fields and not {"row", "col"} <= fields:
            keys.append((0, int(m["index"]) - start))
        else:
            keys.append((int(m["row"]) - start, int(m["col"]) - start))
    if not keys:
        raise ConfigError(f"tiles.pattern {pattern!r} matches no file")
    if "channel" in fields:
        keys = sorted(set(keys))
    if len(set(keys)) != len(keys) or min(min(k) for k in keys) < 0:
        raise ConfigError(
            f"tiles.pattern {pattern!r}: the matching files do not number the tiles once each "
            f"from {start} (tiles.start)"
        )
    return sorted(keys)


def _fields(text: str) -> set[str]:
    """The field names of a format string (ValueError if it is not one)."""
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
