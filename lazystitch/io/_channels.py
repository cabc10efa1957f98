"""Channels held in separate files: a ``{channel}`` field in the tile pattern.

Each tile's channels are found (or named by ``tiles.channels``), checked like any tile, and
stacked into one :class:`TileSource` with a ``c`` axis; its reader reads the same window of
every channel's file. Everything downstream sees one multi-channel tile.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lazystitch.errors import ConfigError, TileError
from lazystitch.io._source import AXES, TileSource, Window, WindowReader

__all__ = ["StackReader", "discover_channels", "format_channel", "stack_channels"]

_MARK = "\x00channel\x00"


@dataclass(frozen=True)
class StackReader:
    """Reads a window of every channel's own reader and stacks them on the ``c`` axis."""

    readers: tuple[WindowReader, ...]
    axis: int

    def read(self, window: Window, view: bool = False) -> tuple[np.ndarray, int]:
        parts = [r.read(window, view=True) for r in self.readers]
        return np.stack([p for p, _ in parts], axis=self.axis), sum(n for _, n in parts)


def stack_channels(parts: Sequence[TileSource], names: Sequence[str]) -> TileSource:
    """One tile of the channels ``parts`` (one source each, named ``names``).

    Raises
    ------
    TileError
        If a channel's file differs from the first one's in shape, dtype or axes, or already
        has a channel axis.
    """
    first = parts[0]
    for p, name in zip(parts[1:], names[1:], strict=True):
        for what in ("shape", "dtype", "axes"):
            if getattr(p, what) != getattr(first, what):
                raise TileError(
                    f"tile {p.name} (channel {name!r}) has {what} {getattr(p, what)}, but "
                    f"{first.name} (channel {names[0]!r}) has {getattr(first, what)}"
                )
    if "c" in first.axes:
        raise TileError(f"tile {first.name} has a channel axis already; drop {{channel}}")
    axis = next(i for i, a in enumerate(first.axes) if AXES.index(a) > AXES.index("c"))
    axes = first.axes[:axis] + "c" + first.axes[axis:]
    shape = (*first.shape[:axis], len(parts), *first.shape[axis:])
    return TileSource(
        name=first.name,
        shape=shape,
        dtype=first.dtype,
        axes=axes,
        reader=StackReader(tuple(p.reader for p in parts), axis),
        identity="|".join(p.identity for p in parts),
        path=first.path,
        pixel_size=first.pixel_size,
        position=first.position,
        channels=tuple(names),
        parts=tuple(parts),
    )


def format_channel(pattern: str, value: str, **fields: int) -> str:
    """``pattern`` formatted with ``channel=value`` (a number where its spec asks for one).

    Examples
    --------
    >>> format_channel("t_{row}_ch{channel:02d}.tif", "1", row=3)
    't_3_ch01.tif'
    >>> format_channel("t_{row}_{channel}.tif", "DAPI", row=0)
    't_0_DAPI.tif'
    """
    try:
        return pattern.format(channel=value, **fields)
    except ValueError:
        if value.lstrip("-").isdigit():
            return pattern.format(channel=int(value), **fields)
        raise ConfigError(
            f"tiles.pattern {pattern!r}: channel {value!r} does not fit the {{channel}} "
            "field's format"
        ) from None


def discover_channels(pattern: str, **fields: int) -> list[str]:
    """The channel values that files on disk give a ``{channel}`` pattern, for one tile's
    other fields: numbers sorted as numbers, names as text.

    Raises
    ------
    ConfigError
        If the field is not in the file name or no file matches.
    """
    parts = []
    for literal, field, spec, conv in string.Formatter().parse(pattern):
        parts.append(literal.replace("{", "{{").replace("}", "}}"))
        if field == "channel":
            parts.append(_MARK)
        elif field is not None:
            parts.append(
                "{" + field + ("!" + conv if conv else "") + (":" + spec if spec else "") + "}"
            )
    filled = "".join(parts).format(**fields)
    folder, name = os.path.split(filled)
    if _MARK in folder or _MARK not in name:
        raise ConfigError(
            f"tiles.pattern {pattern!r}: {{channel}} must be in the file name; or list the "
            "channels with tiles.channels"
        )
    before, after = name.split(_MARK, 1)
    regex = re.compile(
        re.escape(before) + "(.+?)" + re.escape(after).replace(re.escape(_MARK), ".+?") + r"\Z"
    )
    found = []
    for entry in sorted(os.listdir(folder or ".")) if os.path.isdir(folder or ".") else []:
        m = regex.match(entry)
        if m:
            found.append(m[1])
    if not found:
        raise ConfigError(
            f"tiles.pattern {pattern!r}: no file matches {os.path.join(folder, before)}"
            f"*{after}; list the channels with tiles.channels (--channels)"
        )
    if all(v.isdigit() for v in found):
        return sorted(dict.fromkeys(found), key=int)
    return sorted(dict.fromkeys(found))
