"""Writes from many machines: workers write shard files, the run finishes with one HDF5 file.

Write mode ``shards``: the mosaic's storage chunks are grouped into shards (rectangles of
``shard`` chunks). One task per shard takes the shard's encoded chunks, writes them with
``write_direct_chunk`` into its own HDF5 file in ``OUT.partial.shards/`` under a temporary name,
fsyncs it and renames it into place: a shard file exists whole or not at all. When every shard
is there, one task copies the compressed chunk bytes, as they are, from the shards into
``OUT.partial`` (``read_direct_chunk`` → ``write_direct_chunk``, checking each chunk's CRC-32),
which is renamed to ``OUT``: one self-contained file, equal chunk for chunk to the single-writer
output. No chunk bytes pass through the client.

Write mode ``virtual``: the same shards, kept in ``OUT.shards/`` beside a small ``OUT`` whose
dataset is an HDF5 virtual dataset over them (relative paths: move the two together).

``resume`` reuses every shard file already in place that was made with the same settings.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import uuid
import zlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from lazystitch.cluster import active_client
from lazystitch.errors import LazystitchError, ResumeMismatchError
from lazystitch.writers._codec import ChunkCodec
from lazystitch.writers._commit import create_output_file, first_level_attrs
from lazystitch.writers._files import (
    COMPLETE_ATTR,
    LIBVER,
    RUN_ATTR,
    VIRTUAL_LIBVER,
    OutputPaths,
    check_same_settings,
    create_array,
    durable_replace,
    header_arrays,
    mark_complete,
    remove,
)
from lazystitch.writers._format import HDF5Format, Metadata
from lazystitch.writers._plan import ArraySpec, image_arrays
from lazystitch.writers._stream import stream_units
from lazystitch.writers._tasks import UnitTask, sources_graph, unit_graph

__all__ = ["Shard", "ShardError", "WriteMode", "shard_grid", "shard_shape", "write_sharded"]

log = logging.getLogger(__name__)

ChunkIndex = tuple[int, ...]
RECORDS_ATTR = "lazystitch_chunk_records"  # one row per chunk: index..., nbytes, crc32, mask
SHARED_FS_HINT = (
    "the shard write modes need a folder beside the output that every worker can write "
    "(a shared filesystem)"
)

if TYPE_CHECKING:
    from lazystitch.writers._tasks import Mosaic


class WriteMode(str, Enum):
    """How the mosaic reaches the disk.

    ``single``: workers encode chunks, one process writes the file (the default).
    ``shards``: workers write shard files; one self-contained file is assembled from them.
    ``virtual``: workers write shard files, kept beside a virtual-dataset file over them.
    """

    single = "single"
    shards = "shards"
    virtual = "virtual"


class ShardError(LazystitchError, OSError):
    """A shard file cannot be written, or its chunks do not verify."""


def shard_shape(ndim: int, shard: tuple[int, ...] | None) -> tuple[int, ...]:
    """Shard size in storage chunks per axis: ``None`` (4 x 4 in Y, X), ``(N,)``, ``(Y, X)``
    (leading axes get 1), or one value per axis.

    Examples
    --------
    >>> shard_shape(3, None)
    (1, 4, 4)
    >>> shard_shape(2, (8,))
    (8, 8)
    """
    shard = (4, 4) if shard is None else tuple(int(s) for s in shard)
    if len(shard) == 1 and ndim > 1:
        shard = shard * 2
    if len(shard) == 2 and ndim > 2:
        shard = (1,) * (ndim - 2) + shard
    if len(shard) != ndim or any(s < 1 for s in shard):
        raise ValueError(f"shard {shard} must be positive: (Y, X) or one value per axis")
    return shard


@dataclass(frozen=True)
class Shard:
    """A rectangle of storage chunks ``[first, stop)`` of one array, written to one file."""

    index: tuple[int, ...]
    first: ChunkIndex
    stop: ChunkIndex
    array: int = 0

    @property
    def name(self) -> str:
        return f"shard_{self.array}_" + "_".join(map(str, self.index)) + ".h5"

    @property
    def size(self) -> int:
        """How many storage chunks the shard holds."""
        return math.prod(b - a for a, b in zip(self.first, self.stop, strict=True))

    def chunk_indices(self) -> list[ChunkIndex]:
        return list(np.ndindex(*(b - a for a, b in zip(self.first, self.stop, strict=True))))

    def chunks(self) -> list[ChunkIndex]:
        """Global indices of the storage chunks in this shard."""
        return [
            tuple(a + i for a, i in zip(self.first, local, strict=True))
            for local in self.chunk_indices()
        ]

    def shape(self, chunks: tuple[int, ...]) -> tuple[int, ...]:
        """The shard file's dataset shape: whole chunks."""
        return tuple((b - a) * c for a, b, c in zip(self.first, self.stop, chunks, strict=True))

    def region(self, chunks: tuple[int, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
        """The shard's pixels in the mosaic."""
        return tuple(
            slice(a * c, min(b * c, s))
            for a, b, c, s in zip(self.first, self.stop, chunks, shape, strict=True)
        )


def shard_grid(n_chunks: tuple[int, ...], shard: tuple[int, ...], array: int = 0) -> list[Shard]:
    """Tile an array's chunk grid with shards (the last ones along an axis may be smaller).

    Examples
    --------
    >>> [(s.first, s.stop) for s in shard_grid((3, 5), (2, 4))]
    [((0, 0), (2, 4)), ((0, 4), (2, 5)), ((2, 0), (3, 4)), ((2, 4), (3, 5))]
    """
    counts = [-(-n // s) for n, s in zip(n_chunks, shard, strict=True)]
    out = []
    for idx in np.ndindex(*counts):
        first = tuple(i * s for i, s in zip(idx, shard, strict=True))
        stop = tuple(min(a + s, n) for a, s, n in zip(first, shard, n_chunks, strict=True))
        out.append(Shard(tuple(int(i) for i in idx), first, stop, array))
    return out


# --- worker side -------------------------------------------------------------------------


def _write_shard(
    encoded: list[tuple[Any, int, int]],
    folder: str,
    shard: Shard,
    header: dict,
    codec: ChunkCodec,
) -> np.ndarray:
    """Write one shard file whole (temporary name, fsync, rename); return its chunk records."""
    spec = header_arrays(header)[shard.array]
    chunks = spec.chunks
    region = shard.region(chunks, spec.shape)
    final = Path(folder) / shard.name
    tmp = final.with_name(f"{final.name}.{uuid.uuid4().hex[:12]}.tmp")
    records = np.zeros((len(encoded), len(chunks) + 3), dtype=np.int64)
    try:
        with h5py.File(tmp, "w", libver=LIBVER) as f:
            # whole chunks (an edge shard too: its edge chunks are padded as in the mosaic)
            ds = create_array(f, spec, codec, {}, shape=(1,) * spec.pad + shard.shape(chunks))
            ds.attrs[RUN_ATTR] = json.dumps(header, sort_keys=True)
            for row, (local, (data, mask, crc)) in enumerate(
                zip(shard.chunk_indices(), encoded, strict=True)
            ):
                ds.id.write_direct_chunk(spec.offset(local), data, filter_mask=mask)
                glob = tuple(a + i for a, i in zip(shard.first, local, strict=True))
                records[row] = (*glob, memoryview(data).nbytes, crc, mask)
            ds.attrs[RECORDS_ATTR] = records
            ds.attrs["lazystitch_shard_origin"] = np.array([s.start for s in region], np.int64)
            ds.attrs[COMPLETE_ATTR] = True
        durable_replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ShardError(
            f"cannot write shard {final} on worker host {socket.gethostname()}: {exc}; "
            + SHARED_FS_HINT
        ) from None
    return records


def _records(ds: h5py.Dataset) -> np.ndarray:
    return np.asarray(ds.attrs[RECORDS_ATTR], dtype=np.int64)


def _assemble(
    folder: str,
    shards: list[Shard],
    partial: str,
    header: dict,
    codec: ChunkCodec,
    fmt: HDF5Format,
    meta: Metadata,
) -> int:
    """Copy every shard's chunk bytes, as they are, into one new file; return bytes copied."""
    arrays = header_arrays(header)
    copied = 0
    bad = None
    f, datasets = create_output_file(Path(partial), arrays, header, codec, fmt, meta)
    with f:
        for shard in shards:
            spec, ds = arrays[shard.array], datasets[shard.array]
            ndim = len(spec.chunks)
            path = Path(folder) / shard.name
            with h5py.File(path, "r") as sf:
                src = sf[spec.name]
                origin = [int(a) for a in np.asarray(src.attrs["lazystitch_shard_origin"])]
                for rec in _records(src):
                    glob = tuple(int(i) for i in rec[:ndim])
                    nbytes, crc, mask = (int(v) for v in rec[ndim:])
                    offset = spec.offset(glob)
                    local = offset[: spec.pad] + tuple(
                        o - a for o, a in zip(offset[spec.pad :], origin, strict=True)
                    )
                    got_mask, data = src.id.read_direct_chunk(local)
                    if (len(data), zlib.crc32(data), got_mask) != (nbytes, crc, mask):
                        bad = path
                        break
                    plane, where = spec.target(glob)
                    ds[plane].id.write_direct_chunk(where, data, filter_mask=mask)
                    copied += len(data)
            if bad is not None:  # removed, so that --resume computes it again
                bad.unlink()
                raise ShardError(
                    f"chunk {glob} in shard {bad} does not verify (size, CRC-32 or filter mask "
                    "changed); the shard was removed, to be computed again"
                )
        mark_complete(datasets, arrays, bool(meta.channels), meta.dtype)
    return copied


# --- client side -------------------------------------------------------------------------


def _reusable(folder: Path, header: dict, shards: list[Shard]) -> set[str]:
    """Names of the complete shard files in ``folder`` made with these settings (resume).

    Temporary files of killed tasks are removed; a shard made with other settings is an error.
    """
    for tmp in folder.glob("shard_*.tmp"):
        tmp.unlink(missing_ok=True)
    arrays = header_arrays(header)
    wanted = {s.name: s for s in shards}
    found: set[str] = set()
    for path in sorted(folder.glob("shard_*.h5")):
        if path.name not in wanted:
            continue
        try:
            with h5py.File(path, "r") as f:
                ds = f[arrays[wanted[path.name].array].name]
                old = json.loads(ds.attrs[RUN_ATTR])
                complete = bool(ds.attrs.get(COMPLETE_ATTR, False)) and RECORDS_ATTR in ds.attrs
        except (OSError, KeyError, ValueError):
            path.unlink()  # unreadable: recompute it
            continue
        check_same_settings(path, old, header)
        if complete:
            found.add(path.name)
    return found


def _prepare_folder(paths: OutputPaths, header: dict, shards: list[Shard], resume: bool) -> set:
    """Make the shard folder; with ``resume``, return the shards already done."""
    if resume and paths.journal.exists():
        raise ResumeMismatchError(
            f"cannot resume {paths.partial}: it was started with write mode single; resume "
            "with that mode, or pass --overwrite to start over"
        )
    remove(paths.partial)  # a killed assembly: it is redone from the shards
    if resume and not paths.shards.exists() and paths.virtual_shards.exists():
        os.replace(paths.virtual_shards, paths.shards)  # a virtual run died while finishing
    if not resume:
        remove(paths.shards)
    paths.shards.mkdir(parents=True, exist_ok=True)
    return _reusable(paths.shards, header, shards) if resume else set()


def _shard_graph(
    sources: list[Mosaic],
    arrays: list[ArraySpec],
    codec: ChunkCodec,
    header: dict,
    todo: list[Shard],
    folder: Path,
) -> tuple[HighLevelGraph, list[UnitTask]]:
    """One task per shard to write, on top of the encoding tasks of its chunks."""
    wanted = {(s.array, c) for s in todo for c in s.chunks()}
    skip = {(k, i) for k, a in enumerate(arrays) for i in a.indices() if (k, i) not in wanted}
    graph, unit_tasks, _, _ = sources_graph(unit_graph, sources, arrays, codec, skip)
    by_unit = {t.unit: t for t in unit_tasks}
    name = f"write-shard-{tokenize(graph.layers.keys(), str(folder), header)}"
    layer: dict = {}
    tasks = []
    for s in todo:
        members = [by_unit[(s.array, c)] for c in s.chunks()]
        key = (name, s.array, *s.index)
        layer[key] = (_write_shard, [t.key for t in members], str(folder), s, header, codec)
        blocks = tuple(sorted({b for t in members for b in t.blocks}))
        tasks.append(UnitTask((s.array, s.index), key, blocks))
    layers = {**graph.layers, name: layer}
    deps = {**graph.dependencies, name: set(graph.layers)}
    return HighLevelGraph(layers, deps), tasks


def _run_somewhere(func: Any, *args: Any) -> Any:
    """Run ``func`` as one task on the cluster (the client touches no chunk bytes), or here."""
    client = active_client()
    if client is None:
        return func(*args)
    return client.submit(func, *args, pure=False).result()


def _finish_shards(
    paths: OutputPaths,
    header: dict,
    codec: ChunkCodec,
    fmt: HDF5Format,
    meta: Metadata,
    shards: list[Shard],
) -> None:
    _run_somewhere(
        _assemble, str(paths.shards), shards, str(paths.partial), header, codec, fmt, meta
    )
    durable_replace(paths.partial, paths.final)
    remove(paths.virtual_shards)  # an old virtual output's shards, now replaced
    remove(paths.shards)


def _finish_virtual(
    paths: OutputPaths,
    arrays: list[ArraySpec],
    header: dict,
    fmt: HDF5Format,
    meta: Metadata,
    shards: list[Shard],
) -> None:
    if paths.final.exists():  # overwrite: never leave an old master over missing shards
        paths.final.unlink()
    remove(paths.virtual_shards)
    durable_replace(paths.shards, paths.virtual_shards)
    with h5py.File(paths.partial, "w", libver=VIRTUAL_LIBVER) as f:
        fmt.prepare(f, image_arrays(arrays), meta)
        datasets = []
        for k, spec in enumerate(arrays):
            layout = h5py.VirtualLayout(shape=spec.stored_shape, dtype=np.dtype(spec.dtype))
            for s in shards:
                if s.array != k:
                    continue
                region = s.region(spec.chunks, spec.shape)
                source = h5py.VirtualSource(
                    f"{paths.virtual_shards.name}/{s.name}",
                    spec.name,
                    shape=(1,) * spec.pad + s.shape(spec.chunks),
                )
                lead = (slice(0, 1),) * spec.pad
                layout[lead + region] = source[
                    lead + tuple(slice(0, r.stop - r.start) for r in region)
                ]
            datasets.append(f.create_virtual_dataset(spec.name, layout, fillvalue=0))
        for k, ds in enumerate(datasets):
            for name, value in first_level_attrs(fmt, arrays, meta, k).items():
                ds.attrs[name] = value
        datasets[0].attrs[RUN_ATTR] = json.dumps(header, sort_keys=True)
        mark_complete([[d] for d in datasets], arrays, bool(meta.channels), meta.dtype)
    durable_replace(paths.partial, paths.final)


def write_sharded(
    sources: list[Mosaic],
    paths: OutputPaths,
    arrays: list[ArraySpec],
    header: dict,
    codec: ChunkCodec,
    fmt: HDF5Format,
    meta: Metadata,
    *,
    mode: WriteMode,
    shard: tuple[int, ...],
    resume: bool,
    progress: Any = None,
) -> tuple[int, int]:
    """Write the run's arrays in write mode ``shards`` or ``virtual`` (see the module
    docstring): shards of each array (level) on their own.

    Called by :func:`~lazystitch.writers.write_hdf5` under the output's lock, after its
    checks. Returns (units computed, units reused from an earlier run's shards).
    """
    total = sum(a.n_chunks for a in arrays)
    shards = [s for k, a in enumerate(arrays) for s in shard_grid(a.counts, shard, k)]
    done = _prepare_folder(paths, header, shards, resume)
    computed: set[Shard] = set()
    for attempt in (1, 2):
        todo = [s for s in shards if s.name not in done]
        base = total - sum(s.size for s in todo)
        if progress:
            progress(base, total)
        if todo:
            graph, tasks = _shard_graph(sources, arrays, codec, header, todo, paths.shards)
            by_unit = {(s.array, s.index): s for s in todo}
            for unit, records in stream_units(graph, tasks):
                computed.add(by_unit[unit])
                base += len(records)
                if progress:
                    progress(base, total)
        try:
            if mode is WriteMode.virtual:
                _finish_virtual(paths, arrays, header, fmt, meta, shards)
            else:
                _finish_shards(paths, header, codec, fmt, meta, shards)
            break
        except ShardError as exc:  # a shard that does not verify was removed: redo it once
            if attempt == 2:
                raise
            log.warning("%s", exc)
            done = _reusable(paths.shards, header, shards)
    written = sum(s.size for s in computed)
    return written, total - written
