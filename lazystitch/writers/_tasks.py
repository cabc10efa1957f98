"""The tasks that produce encoded chunks: one per (array, chunk) of the run.

Level 0's chunks are cut out of the fused mosaic blocks; level k+1's chunks are the 2x2 block
means of level k's *pieces* (the chunk's pixels, kept on the workers until their last user is
submitted), never re-fused and never read back from the output. Each unit's task returns only
``(encoded bytes, filter mask, CRC-32)``; the pixels stay on the workers.

The graph is a plain dict of tasks on top of the mosaic's graph: dask's ``map_blocks`` and
``rechunk`` would add a split, a merge and an encode task per chunk (three times the
scheduling cost, which on a small cluster is where the time went) and cannot express "each
level from the one above as its chunks are produced" without a rechunk per level.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from lazystitch.writers._codec import Encoder
from lazystitch.writers._plan import ArraySpec, ChunkIndex, Unit, series

if TYPE_CHECKING:  # dask.array loads with the mosaic that is written, if it is an array
    import dask.array as da

    from lazystitch.fusion import FusedGraph

    Mosaic = da.Array | FusedGraph
    """A lazy mosaic: a dask array, or fusion's graph alone (its name, chunks and dtype)."""

__all__ = [
    "PIECE_PREFIX",
    "UnitTask",
    "block_mean",
    "encode",
    "level0_graph",
    "needed_units",
    "sources_graph",
    "subsample",
    "unit_graph",
]

PIECE_PREFIX = "pyramid-piece-"
"""Names of the tasks that hold a level's pixels for the level below: pinned until used."""


@dataclass(frozen=True)
class UnitTask:
    """One unit: its (array, chunk), its task key, and the fused mosaic blocks it reads."""

    unit: Unit
    key: Any
    blocks: tuple[tuple[int, ...], ...]
    write: bool = True  # False: computed only for the coarser chunks made from it


BAND_BYTES = 1 << 19
"""Input bytes per band of rows that :func:`block_mean` averages at a time: its temporaries
then stay in the core's cache (measured on a 2048^2 uint16 block: 4.9 ms whole, 3.1 ms in
bands of 128 rows)."""


def block_mean(a: np.ndarray) -> np.ndarray:
    """The 2x2 block mean over the last two axes; an odd last row or column averages the
    pixels it has. Integers are rounded to nearest (halves up), in the input's dtype.

    Examples
    --------
    >>> block_mean(np.array([[1, 2, 9], [3, 5, 8]], dtype=np.uint16))
    array([[3, 9]], dtype=uint16)
    """
    *lead, h, w = a.shape
    band = max(2, BAND_BYTES // max(1, a[..., :1, :].nbytes) // 2 * 2)
    if h <= band:
        return _block_mean(a)
    out = np.empty((*lead, -(-h // 2), -(-w // 2)), dtype=a.dtype)
    for r in range(0, h, band):  # band is even: each band's rows pair up as the whole's do
        out[..., r // 2 : (r + band) // 2, :] = _block_mean(a[..., r : r + band, :])
    return out


def _block_mean(a: np.ndarray) -> np.ndarray:
    *lead, h, w = a.shape
    hh, ww = -(-h // 2), -(-w // 2)
    integer = np.issubdtype(a.dtype, np.integer) or a.dtype == bool
    if integer and a.dtype.itemsize <= 2:
        acc: type = np.int32
    elif integer and a.dtype.itemsize <= 4:
        acc = np.int64
    else:
        acc = np.float64
    if h % 2 or w % 2:  # an edge chunk: count what is there
        padded = np.zeros((*lead, 2 * hh, 2 * ww), dtype=acc)
        padded[..., :h, :w] = a
        ny = np.full(hh, 2, dtype=acc)
        nx = np.full(ww, 2, dtype=acc)
        ny[-1], nx[-1] = 2 - (2 * hh - h), 2 - (2 * ww - w)
        n = ny[:, None] * nx[None, :]
        src = padded
    else:
        n, src = None, a
    # pairs of rows first (contiguous reads), summed straight into the wider type
    rows: np.ndarray = np.add(src[..., 0::2, :], src[..., 1::2, :], dtype=acc)
    sums: np.ndarray = rows[..., 0::2] + rows[..., 1::2]
    if acc is not np.float64:
        if n is None:  # four pixels: (sum + 2) // 4 as a shift
            sums += 2
            sums >>= 2
            return sums.astype(a.dtype)
        return ((2 * sums + n) // (2 * n)).astype(a.dtype)
    out = sums / (4 if n is None else n)
    if integer:  # 64-bit integers: float64 mean, rounded
        out = np.floor(out + 0.5)
    return out.astype(a.dtype)


def _assemble(
    parts: list[np.ndarray],
    src: list[tuple[slice, ...]],
    dst: list[tuple[slice, ...]],
    shape: tuple[int, ...],
) -> np.ndarray:
    if len(parts) == 1 and parts[0].shape == tuple(shape):
        return parts[0]
    out = np.empty(shape, dtype=parts[0].dtype)
    for p, s_sl, d_sl in zip(parts, src, dst, strict=True):
        out[d_sl] = p[s_sl]
    return out


def subsample(a: np.ndarray) -> np.ndarray:
    """Every other pixel over the last two axes, from the first: the nearest-neighbour 2x
    downsample that labels keep their values through.

    Examples
    --------
    >>> subsample(np.arange(15).reshape(3, 5))
    array([[ 0,  2,  4],
           [10, 12, 14]])
    """
    return np.ascontiguousarray(a[..., ::2, ::2])


REDUCERS = {"mean": block_mean, "nearest": subsample}
"""How a level is made from the level above, by an array's ``reduce``."""


def _piece(
    parts: list[np.ndarray],
    src: list[tuple[slice, ...]],
    dst: list[tuple[slice, ...]],
    shape: tuple[int, ...],
    downsample: str | None,
) -> np.ndarray:
    """Worker side: a chunk's pixels, cut out of its sources (and, for k > 0, reduced by
    ``downsample``: ``mean`` or ``nearest``)."""
    region = _assemble(parts, src, dst, shape)
    return REDUCERS[downsample](region) if downsample else region


def encode(block: np.ndarray, codec: Encoder, chunks: tuple[int, ...]) -> tuple[Any, int, int]:
    """Worker side: encode one chunk and checksum it (the writing process only writes)."""
    data, mask = codec.encode(block, chunks)
    return data, mask, zlib.crc32(data)


def _piece_encode(
    parts: list[np.ndarray],
    src: list[tuple[slice, ...]],
    dst: list[tuple[slice, ...]],
    shape: tuple[int, ...],
    downsample: str | None,
    codec: Encoder,
    chunks: tuple[int, ...],
) -> tuple[Any, int, int]:
    return encode(_piece(parts, src, dst, shape, downsample), codec, chunks)


def _piece_encode_half(
    parts: list[np.ndarray],
    src: list[tuple[slice, ...]],
    dst: list[tuple[slice, ...]],
    shape: tuple[int, ...],
    downsample: str | None,
    codec: Encoder | None,
    chunks: tuple[int, ...],
    half: str | None = "mean",
) -> tuple[Any, int, int, np.ndarray | None]:
    """Worker side: a chunk (level 0's, or with ``downsample`` level 1's, reduced from the
    mosaic block under it) encoded (``codec`` None: not needed, only its half) and, with
    ``half``, its own reduction (``mean`` or ``nearest``), from which the writing process
    builds the next level."""
    chunk = _piece(parts, src, dst, shape, downsample)
    next_half = REDUCERS[half](chunk) if half else None
    if codec is None:
        return b"", 0, 0, next_half
    return (*encode(chunk, codec, chunks), next_half)


def _one_source_each(arrays: list[ArraySpec], edges: list[np.ndarray]) -> bool:
    """Whether every level-1 chunk lies in one block of the mosaic (no block edge inside a
    level-1 chunk: blocks of twice the chunks, as the CLI asks ``fuse`` for, or larger)."""
    if len(arrays) < 2:
        return False
    spec = arrays[1]
    nd = len(spec.shape)
    for d in range(nd):
        scale = 1 if d < nd - 2 else 2
        ends = {min(int(b) * scale, arrays[0].shape[d]) for b in _chunk_edges(spec)[d]}
        if not {int(e) for e in edges[d]} <= ends:
            return False
    return True


def _overlaps(edges: np.ndarray, lo: int, hi: int) -> list[tuple[int, slice, slice]]:
    """Blocks (with these edges) that overlap [lo, hi): (block, slice in block, slice in out)."""
    first = int(np.searchsorted(edges, lo, side="right")) - 1
    last = int(np.searchsorted(edges, hi, side="left")) - 1
    out = []
    for b in range(first, last + 1):
        a0, a1 = max(lo, int(edges[b])), min(hi, int(edges[b + 1]))
        out.append((b, slice(a0 - int(edges[b]), a1 - int(edges[b])), slice(a0 - lo, a1 - lo)))
    return out


def _sources(
    edges: list[np.ndarray], lo: list[int], hi: list[int]
) -> tuple[list[tuple[int, ...]], list[tuple[slice, ...]], list[tuple[slice, ...]]]:
    """The source blocks of the region [lo, hi) and where each one's part goes."""
    per_axis = [_overlaps(e, a, b) for e, a, b in zip(edges, lo, hi, strict=True)]
    combos = list(itertools.product(*per_axis))
    blocks = [tuple(p[0] for p in c) for c in combos]
    src = [tuple(p[1] for p in c) for c in combos]
    return blocks, src, [tuple(p[2] for p in c) for c in combos]


def _chunk_edges(spec: ArraySpec) -> list[np.ndarray]:
    return [
        np.minimum(np.arange(n + 1) * c, s)
        for n, c, s in zip(spec.counts, spec.chunks, spec.shape, strict=True)
    ]


def needed_units(
    arrays: list[ArraySpec],
    skip: set[Unit],
    level0_edges: list[np.ndarray] | None = None,
    level1_from_blocks: bool = False,
) -> tuple[list[set[ChunkIndex]], list[set[ChunkIndex]], list[dict]]:
    """Per level: the chunks to write (not in ``skip``), the chunks whose pixels a coarser
    chunk to write is made from, and each chunk's sources ``(blocks, src, dst, region)`` in
    the level above (level 0: in the blocks with ``level0_edges``, if given; level 1 too,
    with ``level1_from_blocks``, in level-0 pixels).

    A chunk that a needed coarser one is made from is needed even when it is skipped itself:
    a resumed run recomputes a coarse chunk from its finer pieces, not from the output.
    """
    last = len(arrays) - 1
    wanted: list[set[ChunkIndex]] = [
        {i for i in a.indices() if (k, i) not in skip} for k, a in enumerate(arrays)
    ]
    sources: list[dict] = [{} for _ in arrays]
    need_piece: list[set[ChunkIndex]] = [set() for _ in arrays]
    for k in range(last, -1, -1):
        spec = arrays[k]
        if k == 0:
            if level0_edges is None:
                break
            edges = level0_edges
            scale, src_shape = 1, spec.shape
        elif k == 1 and level1_from_blocks:
            assert level0_edges is not None
            edges, scale, src_shape = level0_edges, 2, arrays[0].shape
        else:
            edges = _chunk_edges(arrays[k - 1])
            scale, src_shape = 2, arrays[k - 1].shape
        for idx in wanted[k] | need_piece[k]:
            lo, hi = spec.bounds(idx)
            nlead = len(lo) - 2
            slo = [a if d < nlead else a * scale for d, a in enumerate(lo)]
            shi = [
                b if d < nlead else min(b * scale, s)
                for d, (b, s) in enumerate(zip(hi, src_shape, strict=True))
            ]
            blocks, src, dst = _sources(edges, slo, shi)
            region = tuple(b - a for a, b in zip(slo, shi, strict=True))
            sources[k][idx] = (blocks, src, dst, region)
            if k > 1 or (k == 1 and not level1_from_blocks):
                need_piece[k - 1].update(blocks)
    return wanted, need_piece, sources


def level0_graph(
    mosaic: Mosaic,
    arrays: list[ArraySpec],
    codec: Encoder,
    skip: set[Unit],
) -> tuple[HighLevelGraph, list[UnitTask], list[set[ChunkIndex]], list[set[ChunkIndex]]]:
    """Tasks for the finest levels, each returning ``(bytes, mask, crc, half)``: the writing
    process builds the coarser levels from the halves (see ``_pyramid``).

    When every level-1 chunk lies in one mosaic block (blocks of twice the storage chunks),
    level 1's tasks make their chunks from the blocks and return the halves; level 0's return
    no half. Otherwise only level 0 has tasks. A chunk that is skipped but needed for a
    coarser chunk is computed for its half alone (``UnitTask.write`` False). Returns the
    graph, the tasks, and per level the chunks to write and the chunks needed for coarser ones.
    """
    edges = [np.cumsum((0, *c)) for c in mosaic.chunks]
    direct = _one_source_each(arrays, edges)
    wanted, need_piece, sources = needed_units(arrays, skip, edges, direct)
    token = tokenize(mosaic.name, [a.to_dict() for a in arrays], str(codec), "halves")
    name = f"store-chunk-{token}"
    spec, reduce = arrays[0], arrays[-1].reduce
    layer: dict[Any, Any] = {}
    tasks = []
    for idx in sorted(wanted[0] | need_piece[0]):
        blocks, src, dst, region = sources[0][idx]
        key = (name, 0, *idx)
        write = idx in wanted[0]
        parts = [(mosaic.name, *b) for b in blocks]
        if direct:  # level 1 comes from the blocks, not from level 0's halves
            layer[key] = (_piece_encode, parts, src, dst, region, None, codec, spec.chunks)
        else:
            layer[key] = (
                _piece_encode_half, parts, src, dst, region, None, codec if write else None,
                spec.chunks, reduce if len(arrays) > 1 else None,  # no level 1: no half
            )  # fmt: skip
        tasks.append(UnitTask((0, idx), key, tuple(sorted(blocks)), write))
    for idx in sorted(wanted[1] | need_piece[1]) if direct else ():
        blocks, src, dst, region = sources[1][idx]
        key = (name, 1, *idx)
        write = idx in wanted[1]
        parts = [(mosaic.name, *b) for b in blocks]
        layer[key] = (
            _piece_encode_half, parts, src, dst, region, reduce, codec if write else None,
            arrays[1].chunks, reduce if len(arrays) > 2 else None,
        )  # fmt: skip
        tasks.append(UnitTask((1, idx), key, tuple(sorted(blocks)), write))
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[mosaic])  # type: ignore[list-item]
    return graph, tasks, wanted, need_piece


def unit_graph(
    mosaic: Mosaic,
    arrays: list[ArraySpec],
    codec: Encoder,
    skip: set[Unit],
) -> tuple[HighLevelGraph, list[UnitTask]]:
    """One encode task per unit not in ``skip`` (and the pieces the levels need), on top of
    the mosaic's graph. ``arrays[k]`` is pyramid level k, ``arrays[0]`` the mosaic itself.

    Every level is computed on the workers (the shard write modes, where no chunk passes
    through the writing process). A piece that a needed unit depends on is computed even
    when its own unit is skipped.
    """
    # no dask.optimize: on 2,500 tiles it took 3x as long as building the graph (4.4 s vs
    # 1.4 s) to fuse away 4 % of the tasks
    token = tokenize(mosaic.name, [a.to_dict() for a in arrays], str(codec))
    edges = [np.cumsum((0, *c)) for c in mosaic.chunks]
    wanted, need_piece, sources = needed_units(arrays, skip, edges)
    layer: dict[Any, Any] = {}
    enc_name = f"store-chunk-{token}"
    piece_names = [f"{PIECE_PREFIX}{k}-{token}" for k in range(len(arrays))]
    # the fused blocks each unit reads, for the order the stream visits units in
    reads: list[dict[ChunkIndex, frozenset]] = [{} for _ in arrays]
    for k, spec in enumerate(arrays):
        src_name = mosaic.name if k == 0 else piece_names[k - 1]
        for idx, (blocks, src, dst, region) in sources[k].items():
            parts = [(src_name, *b) for b in blocks]
            if k == 0:
                reads[0][idx] = frozenset(blocks)
            else:
                reads[k][idx] = frozenset().union(*(reads[k - 1][b] for b in blocks))
            down = spec.reduce if k > 0 else None
            enc_key = (enc_name, k, *idx)
            if idx in need_piece[k]:
                piece_key = (piece_names[k], *idx)
                layer[piece_key] = (_piece, parts, src, dst, region, down)
                if idx in wanted[k]:
                    layer[enc_key] = (encode, piece_key, codec, spec.chunks)
            elif idx in wanted[k]:
                layer[enc_key] = (
                    _piece_encode,
                    parts,
                    src,
                    dst,
                    region,
                    down,
                    codec,
                    spec.chunks,
                )
    tasks = [
        UnitTask((k, idx), (enc_name, k, *idx), tuple(sorted(reads[k][idx])))
        for k in range(len(arrays))
        for idx in sorted(wanted[k])
    ]
    graph = HighLevelGraph.from_collections(enc_name, layer, dependencies=[mosaic])  # type: ignore[list-item]
    return graph, tasks


def sources_graph(
    build: Any,
    sources: list[Mosaic],
    arrays: list[ArraySpec],
    codec: Encoder,
    skip: set[Unit],
) -> tuple[HighLevelGraph, list[UnitTask], list[set[ChunkIndex]], list[set[ChunkIndex]]]:
    """``build`` (:func:`level0_graph` or :func:`unit_graph`) for each source's arrays (see
    ``_plan.series``), merged, with units and per-level sets at the run's array positions
    (for :func:`unit_graph`, the sets are empty)."""
    graphs, tasks = [], []
    wanted: list[set[ChunkIndex]] = []
    needed: list[set[ChunkIndex]] = []
    for first, specs in series(arrays):
        own = set(range(first, first + len(specs)))
        local = {(k - first, i) for k, i in skip if k in own}
        out = build(sources[specs[0].source], specs, codec.for_array(specs[0]), local)
        graphs.append(out[0])
        tasks += [replace(t, unit=(t.unit[0] + first, t.unit[1])) for t in out[1]]
        if len(out) > 2:
            wanted += out[2]
            needed += out[3]
        else:
            wanted += [set() for _ in specs]
            needed += [set() for _ in specs]
    return HighLevelGraph.merge(*graphs), tasks, wanted, needed
