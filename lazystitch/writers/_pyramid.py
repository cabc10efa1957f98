"""The pyramid built in the writing process from level 0's halves, as they arrive.

A run may write more than one pyramid (the mosaic's, the tile map's): array positions are the
run's, and a level is built only from the level above of the same source, with its reducer.

Each level-0 task returns its chunk's 2x2 block mean (a quarter of its bytes) with the encoded
chunk. A level-(k+1) chunk is complete when the halves of every level-k chunk under it have
arrived; it is then encoded and written, and its own half goes on to level k+2. No task runs
on the cluster for levels above 0 (on a small cluster each task costs far more than the block
mean of a chunk), and nothing is read back from the output.

This needs chunk edges on even pixels: every chunk size along Y and X even, or one chunk along
that axis. Other chunkings (and the shard write modes) compute every level on the workers
(``_tasks.unit_graph``); both give the same pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from lazystitch.writers._codec import Encoder
from lazystitch.writers._plan import ArraySpec, ChunkIndex, Unit
from lazystitch.writers._tasks import REDUCERS, encode

__all__ = ["PyramidBuilder", "halves_align"]


def halves_align(arrays: list[ArraySpec]) -> bool:
    """Whether each chunk's half lies inside one chunk of the next level (even chunk edges)."""
    for a in arrays[:-1]:
        for c, n in zip(a.chunks[-2:], a.counts[-2:], strict=True):
            if n > 1 and c % 2:
                return False
    return True


class PyramidBuilder:
    """Assembles levels 1.. from the halves of the level above; yields units to write.

    ``wanted[k]``: level k's chunks to write; ``needed[k]``: level k's chunks a coarser chunk
    to write is made from (both from ``_tasks.needed_units``).
    """

    def __init__(
        self,
        arrays: list[ArraySpec],
        codec: Encoder,
        wanted: list[set[ChunkIndex]],
        needed: list[set[ChunkIndex]],
    ) -> None:
        self.arrays, self.codec = arrays, codec
        self.wanted, self.needed = wanted, needed
        self._open: dict[Unit, list[Any]] = {}  # unit -> [pixels, sources still to come]

    @property
    def pending(self) -> int:
        """Chunks started but not complete (all complete at the end of a run)."""
        return len(self._open)

    def _sources(self, level: int, index: ChunkIndex) -> int:
        """How many chunks of ``level - 1`` lie under chunk ``index`` of ``level``."""
        finer, spec = self.arrays[level - 1], self.arrays[level]
        lo, hi = spec.bounds(index)
        n = 1
        for d in range(len(lo) - 2, len(lo)):
            c, s = finer.chunks[d], finer.shape[d]
            first, stop = 2 * lo[d] // c, -(-min(2 * hi[d], s) // c)
            n *= stop - first
        return n

    def _coarser(self, level: int) -> bool:
        """Whether array ``level`` has a coarser level of its own source after it (the next
        array may be another source's first)."""
        k = level + 1
        return k < len(self.arrays) and self.arrays[k].source == self.arrays[level].source

    def add(self, level: int, index: ChunkIndex, half: np.ndarray) -> Iterator[tuple[Unit, Any]]:
        """Take the half of chunk ``index`` of ``level``; yield ``(unit, (bytes, mask, crc))``
        for each coarser chunk that is now complete and to be written."""
        k = level + 1
        if not self._coarser(level) or index not in self.needed[level]:
            return
        finer, spec = self.arrays[level], self.arrays[k]
        flo, _ = finer.bounds(index)
        nlead = len(flo) - 2
        at = [a if d < nlead else a // 2 for d, a in enumerate(flo)]  # in level k's pixels
        target = tuple(a // c for a, c in zip(at, spec.chunks, strict=True))
        unit = (k, target)
        entry = self._open.get(unit)
        if entry is None:
            lo, hi = spec.bounds(target)
            shape = tuple(b - a for a, b in zip(lo, hi, strict=True))
            entry = self._open[unit] = [np.empty(shape, half.dtype), self._sources(k, target)]
        lo, _ = spec.bounds(target)
        where = tuple(slice(a - o, a - o + n) for a, o, n in zip(at, lo, half.shape, strict=True))
        entry[0][where] = half
        entry[1] -= 1
        if entry[1]:
            return
        del self._open[unit]
        pixels = entry[0]
        if target in self.wanted[k]:
            yield unit, encode(pixels, self.codec.for_array(spec), spec.chunks)
        if self._coarser(k):
            yield from self.add(k, target, REDUCERS[spec.reduce](pixels))
