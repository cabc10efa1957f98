"""Stream storage-chunk tasks through the cluster with bounded memory.

The chunks are grouped by the fused mosaic block they finish (a chunk is submitted with the
last block it needs), and the groups are visited in column bands, row by row inside a band.
At most ``window`` groups are in flight: a group is submitted (as its own culled subgraph)
only when an earlier one has been written. That is the backpressure that keeps workers from
racing ahead of the one process that writes.

Inside a band nothing is computed twice: the tile reads and fused blocks that a later group of
the band needs are pinned (a future is held for them) from their first use to the submission
of their last user. Memory is bounded by the band (about two rows of ``band`` tiles), not by
the mosaic; across a band edge one column of tiles is read, and one column of blocks fused,
again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dask.core import get_dependencies
from dask.highlevelgraph import HighLevelGraph

from lazystitch.cluster import active_client

__all__ = ["ChunkTask", "stream_chunks"]

ChunkIndex = tuple[int, ...]


@dataclass(frozen=True)
class ChunkTask:
    """One storage chunk: its index, its task key, and the mosaic blocks it reads."""

    index: ChunkIndex
    key: Any
    blocks: tuple[tuple[int, ...], ...]


def _order(block: tuple[int, ...], band: int) -> tuple[int, ...]:
    """Visit order of a mosaic block: column band, then row, then column, then leading axes."""
    *lead, i, j = block
    return (j // band, i, j, *lead)


def _groups(todo: list[ChunkTask], band: int) -> list[list[ChunkTask]]:
    by_block: dict[tuple[int, ...], list[ChunkTask]] = {}
    for t in todo:
        last = max(t.blocks, key=lambda b: _order(b, band))
        by_block.setdefault(last, []).append(t)
    return [by_block[b] for b in sorted(by_block, key=lambda b: _order(b, band))]


class _Closure:
    """Culled subgraphs of a flat graph, one group of output keys at a time."""

    def __init__(self, graph: HighLevelGraph) -> None:
        self.dsk = dict(graph)
        self._deps: dict[Any, set] = {}

    def deps(self, key: Any) -> set:
        if key not in self._deps:
            self._deps[key] = get_dependencies(self.dsk, key)
        return self._deps[key]

    def subgraph(self, keys: list[Any]) -> dict:
        seen: set = set()
        stack = list(keys)
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            stack.extend(self.deps(k))
        return {k: self.dsk[k] for k in seen}


def stream_chunks(
    graph: HighLevelGraph,
    todo: list[ChunkTask],
    *,
    window: int = 4,
    band: int = 4,
) -> Iterator[tuple[ChunkIndex, Any]]:
    """Yield ``(chunk index, result)`` as chunks are computed, keeping ``window`` groups in flight.

    Parameters
    ----------
    graph : HighLevelGraph
        Holds every chunk task and what it depends on.
    todo : list of ChunkTask
    window : int
        Groups (a fused block's chunks) in flight at once.
    band : int
        Width of a column band, in fused blocks (tiles).

    Uses the active ``distributed`` Client if there is one, else dask's threaded scheduler.
    """
    groups = _groups(todo, band)
    closure = _Closure(graph)
    client = active_client()
    if client is None:
        from dask.threaded import get

        for s in range(0, len(groups), window):
            part = [t for g in groups[s : s + window] for t in g]
            keys = [t.key for t in part]
            results = get(closure.subgraph(keys), keys)
            yield from zip((t.index for t in part), results, strict=True)
        return

    from distributed import as_completed

    subgraphs = [closure.subgraph([t.key for t in g]) for g in groups]
    bands = [
        _order(max((b for t in g for b in t.blocks), key=lambda b: _order(b, band)), band)[0]
        for g in groups
    ]
    # pinnable: tile reads (no dependencies) and the fused blocks chunk tasks read
    blocks = {d for g in groups for t in g for d in closure.deps(t.key)}
    last_use: dict[tuple[int, Any], int] = {}
    for gi, sub in enumerate(subgraphs):
        for k in sub:
            if k in blocks or not closure.deps(k):
                last_use[(bands[gi], k)] = gi
    pins: dict[Any, Any] = {}
    index_of: dict[Any, ChunkIndex] = {}
    group_of: dict[Any, int] = {}
    left: dict[int, int] = {}  # group -> chunks not yet yielded
    ac = as_completed(with_results=True)
    next_group = 0

    def submit(gi: int) -> None:
        chunk_keys = [t.key for t in groups[gi]]
        pin_keys = [
            k for k in subgraphs[gi] if last_use.get((bands[gi], k), -1) > gi and k not in pins
        ]
        futures = client.get(subgraphs[gi], chunk_keys + pin_keys, sync=False)
        for k, f in zip(pin_keys, futures[len(chunk_keys) :], strict=True):
            pins[k] = f
        for t in groups[gi]:
            index_of[t.key], group_of[t.key] = t.index, gi
        left[gi] = len(chunk_keys)
        ac.update(futures[: len(chunk_keys)])
        for k in [k for k in pins if last_use.get((bands[gi], k), -1) <= gi]:
            pins.pop(k).release()  # this group was its last user (its futures hold it now)

    try:
        while next_group < len(groups) and len(left) < window:
            submit(next_group)
            next_group += 1
        while left:
            for fut, result in ac.next_batch(block=True):
                if fut.status != "finished":
                    raise RuntimeError(f"chunk task {fut.key} ended as {fut.status}: {result!r}")
                gi = group_of.pop(fut.key)
                yield index_of.pop(fut.key), result
                fut.release()
                left[gi] -= 1
                if left[gi] == 0:
                    del left[gi]
                    if next_group < len(groups):
                        submit(next_group)
                        next_group += 1
    finally:
        # release (not cancel) what is left: cancelling keys that a rerun in this session
        # resubmits right away can cancel the rerun's futures too
        for fut in [*ac.futures, *pins.values()]:
            fut.release()
        ac.clear()
        pins.clear()
