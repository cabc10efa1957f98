"""What a run writes: the set of arrays (pyramid levels), their chunk grids, and the run header.

The unit of work everywhere in the writer is ``(array, chunk)``: an :class:`ArraySpec` position
in the run's list of arrays and a chunk index in that array's grid. Exactly one task computes
and encodes each unit, and the journal, resume, shards and virtual datasets key on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "LABELS_CODEC",
    "TILE_MAP",
    "ArraySpec",
    "Unit",
    "chunk_counts",
    "image_arrays",
    "level_count",
    "level_shapes",
    "parse_levels",
    "run_header",
    "series",
    "storage_chunks",
    "tile_map_arrays",
]

TILE_MAP = "tile_map"
"""The tile map's name in every format (``/tile_map`` in HDF5, ``labels/tile_map`` in Zarr)."""

LABELS_CODEC = "gzip:1"
"""How the tile map is stored, whatever the mosaic's compression: labels are piecewise
constant, so zlib at level 1 makes a 1024^2 chunk of uint8 labels ~130x smaller at ~1.6 ms a
MB (measured), and every reader of every format decodes it (Fiji's HDF5 library included)."""

ChunkIndex = tuple[int, ...]
Unit = tuple[int, ChunkIndex]  # (array position in the run, chunk index)


def chunk_counts(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    """How many storage chunks cover ``shape`` along each axis.

    Examples
    --------
    >>> chunk_counts((1000, 300), (512, 512))
    (2, 1)
    """
    return tuple(-(-int(s) // int(c)) for s, c in zip(shape, chunks, strict=True))


@dataclass(frozen=True)
class ArraySpec:
    """One array of a run: where it is stored, its shape, stored dtype and chunk shape.

    ``level`` is its pyramid level (0 = full resolution); ``dtype`` is what the file stores
    (BigDataViewer stores uint16 as int16 with the same bits); the pixels are computed in the
    mosaic's dtype. ``pad`` leading axes of length 1 are added in the file (BigDataViewer
    stores a 2-D mosaic as z, y, x with z = 1); the chunks' bytes are the same.

    With ``split``, each plane of the first axis (a channel; its chunks are 1 deep) is stored
    as a dataset of its own, named ``name.format(plane=c)`` (BigDataViewer's one setup per
    channel): the units, tasks and chunk bytes stay those of the whole array; only where a
    chunk lands differs (:meth:`target`). Shard files hold the whole array (:meth:`offset`).

    ``source`` is which of the run's lazy arrays it is made from (0: the mosaic, 1: the tile
    map) and ``reduce`` how its level is made from the level above (``mean``: 2x2 block means;
    ``nearest``: every other pixel, for labels). A run lists source 0's levels first, then
    source 1's. ``codec``, when set, is how the array's chunks are stored instead of the run's
    compression (the tile map's: :data:`LABELS_CODEC`).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    level: int = 0
    pad: int = 0
    split: bool = False
    source: int = 0
    reduce: str = "mean"
    codec: str = ""

    @property
    def planes(self) -> int:
        """How many datasets the array is stored as."""
        return self.shape[0] if self.split else 1

    def dataset_name(self, plane: int = 0) -> str:
        return self.name.format(plane=plane) if self.split else self.name

    @property
    def stored_shape(self) -> tuple[int, ...]:
        """The shape of each dataset the array is stored as."""
        return (1,) * self.pad + (self.shape[1:] if self.split else self.shape)

    @property
    def stored_chunks(self) -> tuple[int, ...]:
        return (1,) * self.pad + (self.chunks[1:] if self.split else self.chunks)

    @property
    def whole_chunks(self) -> tuple[int, ...]:
        """The chunk shape of the whole (unsplit) array, as shard files store it."""
        return (1,) * self.pad + self.chunks

    def offset(self, index: ChunkIndex) -> tuple[int, ...]:
        """The chunk's first pixel in the whole (unsplit) array as stored, padded."""
        return (0,) * self.pad + tuple(i * c for i, c in zip(index, self.chunks, strict=True))

    def target(self, index: ChunkIndex) -> tuple[int, tuple[int, ...]]:
        """Which of the array's datasets holds the chunk, and its offset there
        (``write_direct_chunk``'s)."""
        if not self.split:
            return 0, self.offset(index)
        rest = tuple(i * c for i, c in zip(index[1:], self.chunks[1:], strict=True))
        return int(index[0]) * self.chunks[0], (0,) * self.pad + rest

    @property
    def counts(self) -> tuple[int, ...]:
        return chunk_counts(self.shape, self.chunks)

    @property
    def n_chunks(self) -> int:
        return math.prod(self.counts)

    @property
    def chunk_nbytes(self) -> int:
        """Bytes of one whole chunk, uncompressed."""
        return math.prod(self.chunks) * np.dtype(self.dtype).itemsize

    def indices(self) -> Iterator[ChunkIndex]:
        for idx in np.ndindex(*self.counts):
            yield tuple(int(i) for i in idx)

    def bounds(self, index: ChunkIndex) -> tuple[list[int], list[int]]:
        """The chunk's first and stop pixel along each axis."""
        lo = [i * c for i, c in zip(index, self.chunks, strict=True)]
        hi = [min(a + c, s) for a, c, s in zip(lo, self.chunks, self.shape, strict=True)]
        return lo, hi

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "chunks": list(self.chunks),
            "level": self.level,
            "pad": self.pad,
            **({"split": True} if self.split else {}),
            **({"source": self.source} if self.source else {}),
            **({"reduce": self.reduce} if self.reduce != "mean" else {}),
            **({"codec": self.codec} if self.codec else {}),
        }


def image_arrays(arrays: list[ArraySpec]) -> list[ArraySpec]:
    """The mosaic's arrays of a run (its levels, finest first), without the tile map's."""
    return [a for a in arrays if a.source == 0]


def tile_map_arrays(arrays: list[ArraySpec]) -> list[ArraySpec]:
    """The tile map's arrays of a run (its levels, finest first; none without one)."""
    return [a for a in arrays if a.source == 1]


def series(arrays: list[ArraySpec]) -> list[tuple[int, list[ArraySpec]]]:
    """The run's arrays by source: ``(position of the first, its levels)`` per source."""
    out: list[tuple[int, list[ArraySpec]]] = []
    for k, a in enumerate(arrays):
        if not out or out[-1][1][0].source != a.source:
            out.append((k, []))
        out[-1][1].append(a)
    return out


def storage_chunks(shape: tuple[int, ...], chunks: tuple[int, ...] | None) -> tuple[int, ...]:
    """Normalise a chunk request: ``None``; ``(N,)`` for square Y, X; ``(Y, X)`` (leading axes
    get 1); one per axis.

    Values are clipped to the array's shape.

    Examples
    --------
    >>> storage_chunks((5, 3000, 800), (512, 512))
    (1, 512, 512)
    >>> storage_chunks((5, 3000, 800), (5, 4096, 100))
    (5, 3000, 100)
    >>> storage_chunks((3000, 800), (256,))
    (256, 256)
    """
    nd = len(shape)
    if chunks is None:
        chunks = (1024, 1024)
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) == 1 and nd > 1:  # one value: square Y, X chunks
        chunks = chunks * 2
    if len(chunks) == 2 and nd > 2:
        chunks = (1,) * (nd - 2) + chunks
    if len(chunks) != nd:
        raise ValueError(
            f"chunks {chunks} must be (Y, X) or one value per axis of the mosaic {shape}"
        )
    if any(c < 1 for c in chunks):
        raise ValueError(f"chunks {chunks} must be positive")
    return tuple(max(1, min(c, s)) for c, s in zip(chunks, shape, strict=True))


def level_shapes(shape: tuple[int, ...], levels: int) -> list[tuple[int, ...]]:
    """Shapes of ``levels`` pyramid levels: each halves Y and X (rounding up), leading axes
    untouched.

    Examples
    --------
    >>> level_shapes((3, 1000, 301), 3)
    [(3, 1000, 301), (3, 500, 151), (3, 250, 76)]
    """
    out = [tuple(int(s) for s in shape)]
    for _ in range(levels - 1):
        *lead, y, x = out[-1]
        out.append((*lead, -(-y // 2), -(-x // 2)))
    return out


def level_count(shape: tuple[int, ...], chunks: tuple[int, ...], levels: int | str | None) -> int:
    """How many levels a request gives: ``None``/``1`` none below full resolution, ``"auto"``
    down to the first level that fits in one chunk, or ``N`` levels in all.

    Examples
    --------
    >>> level_count((5000, 3000), (1024, 1024), "auto")
    4
    >>> level_count((800, 800), (1024, 1024), "auto")
    1
    """
    if levels is None:
        return 1
    if levels == "auto":
        n, (y, x) = 1, shape[-2:]
        cy, cx = chunks[-2:]
        while y > cy or x > cx:
            y, x, n = -(-y // 2), -(-x // 2), n + 1
        return n
    n = int(levels)
    if n < 1:
        raise ValueError(f"levels must be at least 1 (full resolution only), not {n}")
    most = max(1, math.ceil(math.log2(max(shape[-2:])))) + 1
    if n > most:
        raise ValueError(
            f"levels {n} is more than a {shape[-2]}x{shape[-1]} mosaic has: at most {most} "
            "(down to one pixel); use 'auto' to stop at one chunk"
        )
    return n


def parse_levels(value: Any) -> int | str | None:
    """A ``--levels`` value: ``auto``, a whole number >= 1, or ``none``/``off`` (no pyramid)."""
    if value is None or isinstance(value, bool):
        raise ValueError("levels must be 'auto' or a whole number >= 1")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"levels must be 'auto' or a whole number >= 1, not {value}")
        return value
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("none", "off", "no"):
        return 1
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"levels must be 'auto' or a whole number >= 1, not {value!r}") from None
    return parse_levels(n)


def run_header(
    arrays: list[ArraySpec],
    *,
    layout: str,
    codec: str,
    fingerprint: str | dict[str, Any],
    shard: tuple[int, ...] | None = None,
    pixel_size: float | None = None,
) -> dict[str, Any]:
    """The settings a run's chunks depend on; ``resume`` refuses a partial run whose header
    differs, naming what differs."""
    level0 = arrays[0]
    header: dict[str, Any] = {
        "format": 2,
        "layout": layout,
        "dataset": level0.dataset_name(0),
        "shape": list(level0.shape),
        "dtype": level0.dtype,
        "chunks": list(level0.chunks),
        "levels": len(image_arrays(arrays)),
        "arrays": [a.to_dict() for a in arrays],
        "compression": codec,
        "inputs": fingerprint,
    }
    if pixel_size is not None:
        header["pixel_size"] = pixel_size
    if shard is not None:  # the shard write modes; their files hold the same chunk bytes
        header["shard"] = list(shard)
    return header
