"""The writer core: a lazy mosaic and its pyramid into one output, exactly once, resumably.

Data flows forward once:

1. **plan** (``_plan``): the run's arrays (one per pyramid level, laid out by the format) and
   the units ``(array, chunk)``; with ``resume``, which units are already durable (``_resume``);
2. **tasks** (``_tasks``, ``_stream``): workers compute and encode each missing unit exactly
   once, streamed with backpressure;
3. **commit** (``_commit``): one thread of this process writes the encoded bytes into
   ``OUT.partial`` and journals them after each fsync'ed batch; or, in the shard write modes,
   each worker writes whole shard files (``_shards``);
4. **finish**: level 0 marked complete, the partial file renamed into place atomically, then the
   format's companion files (BigDataViewer's XML).

A format (``_format_hdf5``, ``_format_bdv``) supplies only its layout, stored dtype and metadata.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from lazystitch.errors import ConfigError
from lazystitch.writers._codec import ChunkCodec, Encoder
from lazystitch.writers._commit import BackgroundWriter, ChunkFile
from lazystitch.writers._commit_zarr import ZarrChunkStore
from lazystitch.writers._files import (
    OutputPaths,
    differences,
    durable_replace,
    final_header,
    remove,
)
from lazystitch.writers._format import Format, HDF5Format, Metadata
from lazystitch.writers._format_bdv import BigDataViewer
from lazystitch.writers._format_hdf5 import PlainHDF5
from lazystitch.writers._format_ometiff import TILE, OmeTiff, tiff_header
from lazystitch.writers._format_omezarr import OmeZarr, ZarrCodec
from lazystitch.writers._locks import output_lock
from lazystitch.writers._plan import (
    LABELS_CODEC,
    TILE_MAP,
    ArraySpec,
    Unit,
    image_arrays,
    level_count,
    level_shapes,
    run_header,
    storage_chunks,
    tile_map_arrays,
)
from lazystitch.writers._pyramid import PyramidBuilder, halves_align
from lazystitch.writers._resume import copy_verified, resume_source
from lazystitch.writers._shards import WriteMode, shard_shape, write_sharded
from lazystitch.writers._stream import stream_groups
from lazystitch.writers._target import check_chunk_count, check_output, refuse_clobber
from lazystitch.writers._tasks import UnitTask, level0_graph, sources_graph, unit_graph

if TYPE_CHECKING:
    from lazystitch.fusion import TileMap
    from lazystitch.writers._tasks import Mosaic

__all__ = ["FORMATS", "ProgressFn", "WriteResult", "output_format", "plan_arrays", "write_hdf5"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]

GROUP_BYTES = 16 << 20
"""Chunk bytes per cluster task (a group of units): measured on 14 x 14 tiles of 2048^2, groups
of 96 MB gave no faster run than 16 MB and 2.5 times the peak memory of a 4 x 4 job."""
FORMATS = ("hdf5", "bdv", "ome-zarr", "ome-tiff")


def output_format(
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    ome_zarr_version: str = "0.5",
    shard: tuple[int, ...] | None = None,
) -> Format:
    """The format named, or the one an output's name implies (``*.xml``: BigDataViewer,
    ``*.zarr``: OME-Zarr, ``*.ome.tif[f]``: OME-TIFF, else plain HDF5). ``shard`` is
    OME-Zarr's Zarr v3 sharding (shards of that many storage chunks); the HDF5 formats take
    it in the shard write modes."""
    name = Path(path).name.lower()
    if fmt in (None, "auto"):
        by_suffix = {
            ".xml": "bdv",
            ".zarr": "ome-zarr",
            ".ome.tif": "ome-tiff",
            ".ome.tiff": "ome-tiff",
        }
        fmt = next((f for s, f in by_suffix.items() if name.endswith(s)), "hdf5")
    if fmt == "hdf5":
        return PlainHDF5()
    if fmt == "bdv":
        return BigDataViewer()
    if fmt == "ome-zarr":
        return OmeZarr(ome_zarr_version, shard)
    if fmt == "ome-tiff":
        return OmeTiff()
    raise ConfigError(f"output.format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_hdf5` did."""

    out: Path
    dataset: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    compression: str
    chunks_total: int
    chunks_written: int
    chunks_skipped: int
    seconds: float
    write_mode: str = "single"
    format: str = "hdf5"
    levels: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    tile_map: list[str] = field(default_factory=list)  # the tile map's levels, if written

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["out"] = str(self.out)
        d["shape"], d["chunks"] = list(self.shape), list(self.chunks)
        return d


def plan_arrays(
    fmt: Format,
    dataset: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    chunks: tuple[int, ...],
    levels: int | str | None,
    channels: int = 0,
    tile_map: np.dtype | None = None,
) -> list[ArraySpec]:
    """The run's arrays: the mosaic and its pyramid levels, each chunked like level 0
    (clipped to its shape), laid out by the format (``channels``: the size of a leading
    channel axis, 0 if there is none); then, given the tile map's dtype (``tile_map``), the
    tile map's levels, chunked like the mosaic's in Y and X."""
    n = level_count(shape, chunks, levels)
    shapes = level_shapes(shape, n)
    level_chunks = [tuple(min(c, s) for c, s in zip(chunks, sh, strict=True)) for sh in shapes]
    arrays = fmt.arrays(dataset, shapes, dtype, level_chunks, channels=channels)
    if tile_map is None:
        return arrays
    if fmt.tile_map_name(0) in {a.dataset_name(c) for a in arrays for c in range(a.planes)}:
        raise ConfigError(f"output.dataset: {dataset!r} is where the tile map goes; rename it")
    one = (1,) * (len(shape) - 2)  # the tile map's leading axes, of length 1
    label = str(np.dtype(tile_map))
    for a in list(arrays):
        shape, unit = (*one, *a.shape[-2:]), (*one, *a.chunks[-2:])
        name = fmt.tile_map_name(a.level)
        arrays.append(
            ArraySpec(
                name, shape, label, unit, a.level, source=1, reduce="nearest", codec=LABELS_CODEC
            )
        )
    return arrays


def write_hdf5(
    mosaic: Mosaic,
    path: str | os.PathLike,
    *,
    dataset: str = "mosaic",
    chunks: tuple[int, ...] | None = None,
    codec: ChunkCodec | str = "none",
    attrs: dict[str, Any] | None = None,
    fingerprint: str | dict[str, Any] = "",
    overwrite: bool = False,
    resume: bool = False,
    progress: ProgressFn | None = None,
    mode: WriteMode | str = WriteMode.single,
    shard: tuple[int, ...] | None = None,
    batch_bytes: int = 128 << 20,
    batch_seconds: float = 1.0,
    inputs: Sequence[str | os.PathLike] = (),
    levels: int | str | None = "auto",
    format: str | None = None,
    pixel_size: float | None = None,
    channels: Sequence[str] | None = None,
    axes: str | None = None,
    ome_zarr_version: str = "0.5",
    tile_map: TileMap | None = None,
) -> WriteResult:
    """Compute ``mosaic`` and its pyramid and store them in ``path``.

    Parameters
    ----------
    mosaic : dask.array.Array or lazystitch.fusion.FusedGraph
        The lazy mosaic (any chunking; it is cut into ``chunks``).
    path : path-like
        The output. It appears only when complete; meanwhile ``PATH.partial`` and
        ``PATH.partial.journal`` hold the run in progress. For the BigDataViewer format
        (``format="bdv"`` or a path ending ``.xml``) the chunks go to ``PATH.h5`` and the
        XML is written beside it once that is complete.
    dataset : str
        Level 0's dataset name in the plain HDF5 format; the levels sit beside it as
        ``{dataset}_level1``, ... .
    chunks : tuple of int, optional
        Storage chunk shape, ``(Y, X)`` or one per axis (see :func:`storage_chunks`); every
        level uses the same (clipped to its shape).
    codec : ChunkCodec or str
        Compression, e.g. ``"none"``, ``"gzip:4"``, ``"lzf"``, ``"blosc"``, ``"zstd"``
        (BigDataViewer: ``none`` or ``gzip`` only).
    attrs : dict, optional
        Attributes stored on level 0.
    fingerprint : str or dict
        Identifies the inputs (tiles, positions, blending); ``resume`` refuses a partial run made
        from different inputs or settings. A dict (JSON-able) is compared entry by entry, so the
        refusal names what changed (``{"tiles": {path: stamp}, "positions": hash, ...}``).
    overwrite : bool
        Replace an existing output (only when the new one is complete) or partial run.
    resume : bool
        Continue a partial run, recomputing only the units not durably written.
    progress : callable(done, total), optional
        Called as chunks (of every level) are written.
    mode : {"single", "shards", "virtual"}
        ``single``: workers encode chunks and this process writes them (one machine).
        ``shards``: workers write shard files beside the output (a filesystem they all see),
        assembled at the end into one self-contained file by copying the compressed chunk
        bytes. ``virtual``: the shards stay in ``PATH.shards/`` and ``PATH`` holds virtual
        datasets over them. All three give the same data; ``single`` and ``shards`` the same
        chunk bytes.
    shard : tuple of int, optional
        Shard size in storage chunks, ``(Y, X)`` or one per axis (default 4 x 4).
    batch_bytes, batch_seconds : int, float
        A batch of written chunks is made durable (flush, fsync, journal) when it reaches this
        many bytes or this age.
    inputs : sequence of path-like
        The files the mosaic is made from (tiles, positions): ``path`` may not be one of them.
    levels : int, "auto" or None
        Pyramid levels in all, level 0 included: ``"auto"`` (down to the first level that
        fits in one chunk), ``N``, or ``None``/``1`` for no pyramid. Level k+1 is the 2 x 2
        block mean of level k (Y, X; integers rounded to nearest, halves up; an odd last row
        or column averages what it has), made from level k's chunks as they are produced.
    format : {"hdf5", "bdv", "ome-zarr"}, optional
        Default: ``bdv`` for a path ending ``.xml``, ``ome-zarr`` for one ending ``.zarr``
        (a folder, renamed into place when complete), else ``hdf5``.
    pixel_size : float, optional
        µm per pixel (Y and X), recorded in the metadata (unknown if None).
    channels : sequence of str, optional
        Names of the channels along the mosaic's first axis, if it is one: the
        BigDataViewer format stores each as a setup of its own, under its name.
    axes : str, optional
        The mosaic's axis names (e.g. ``"cyx"``) for the OME-Zarr axes; default from its
        shape (``yx``, ``cyx`` with channels, else ``zyx``, ...).
    ome_zarr_version : {"0.5", "0.4"}
        OME-Zarr only: 0.5 on Zarr v3 (sharded with ``shard``), or 0.4 on Zarr v2.
    tile_map : lazystitch.fusion.TileMap, optional
        Also write this tile map (``lazystitch.fusion.tile_map_graph``, cut like the
        mosaic: which tile each pixel came from) with its own pyramid, whose levels take
        every other pixel (nearest, so labels stay labels): ``/tile_map`` in the HDF5
        formats, ``labels/tile_map`` in OME-Zarr, a second image in the OME-TIFF.

    Returns
    -------
    WriteResult

    Raises
    ------
    OutputExistsError, PartialOutputError, ResumeMismatchError, OutputLockedError
        Nothing on disk is changed when these are raised.
    OutputTargetError
        If ``path`` is an input, a folder or a device, cannot be written, or a folder beside
        it holds files lazystitch did not write; or ``chunks`` would make a huge number of
        tiny chunks. A run holds ``PATH.lock`` (host and pid) while it works; a second run on
        the same output is refused, and a lock left by a dead process on this host is
        reported and taken over.
    ConfigError
        If the format cannot hold the mosaic (its dtype, dimensions or the compression).

    Notes
    -----
    Uses the active ``distributed`` Client if there is one (never starts one), else the local
    dask scheduler. No h5py object leaves this process, and only this process opens the file
    (in the shard modes, each worker opens only its own shard files).
    """
    t0 = time.perf_counter()
    codec = codec if isinstance(codec, ChunkCodec) else ChunkCodec.parse(codec)
    mode = WriteMode(mode)
    fmt = output_format(path, format, ome_zarr_version=ome_zarr_version, shard=shard)
    if isinstance(fmt, OmeTiff):  # the core writes the pyramid, then it becomes a TIFF
        fmt.check(tuple(mosaic.shape), mosaic.dtype, codec)
        levels_run = {
            "dataset": "mosaic", "chunks": chunks, "attrs": attrs, "fingerprint": fingerprint,
            "progress": progress, "mode": mode, "shard": shard, "batch_bytes": batch_bytes,
            "batch_seconds": batch_seconds, "levels": levels, "pixel_size": pixel_size,
            "channels": channels, "axes": axes, "tile_map": tile_map,
        }  # fmt: skip
        return _write_tiff(mosaic, Path(path), fmt, codec, inputs, overwrite, resume, levels_run)
    zarr_out = fmt.container == "zarr"
    if zarr_out and mode is not WriteMode.single:
        raise ConfigError(
            f"output.write_mode: {mode.value} writes HDF5 shard files; OME-Zarr chunks are "
            "files of their own, written in mode single (Zarr v3 sharding: --shard)"
        )
    n_channels = len(channels) if channels else 0
    fmt.check(tuple(mosaic.shape), mosaic.dtype, codec, channels=n_channels)
    out = Path(path)
    data_path = fmt.data_path(out)
    inputs_ = [Path(p) for p in inputs]
    companions = fmt.companions(out)
    for c in companions:  # the same checks as the data file (an input? a folder? clobber?)
        check_output(c, overwrite=overwrite, resume=resume, inputs=inputs_)
    paths = check_output(
        data_path, overwrite=overwrite, resume=resume, inputs=inputs_, folder=zarr_out
    )
    chunks, arrays, shard, header = _plan_run(
        mosaic, fmt, dataset, chunks, levels, n_channels, codec, fingerprint, mode, shard,
        pixel_size, tile_map,
    )  # fmt: skip
    enc = fmt.encoder(codec, chunks) if isinstance(fmt, OmeZarr) else codec
    meta = Metadata(
        pixel_size, attrs or {}, str(mosaic.dtype), tuple(channels) if channels else None, axes,
        tile_map.keys if tile_map is not None else None,
    )  # fmt: skip
    sources = [mosaic] if tile_map is None else [mosaic, tile_map.labels]
    images = image_arrays(arrays)
    total = sum(a.n_chunks for a in arrays)

    def result(written: int, skipped: int) -> WriteResult:
        return WriteResult(
            paths.final,
            arrays[0].dataset_name(0),
            tuple(mosaic.shape),
            str(mosaic.dtype),
            chunks,
            str(codec),
            total,
            written,
            skipped,
            time.perf_counter() - t0,
            mode.value,
            fmt.name,
            [{"name": a.name, "shape": list(a.shape), "chunks": list(a.chunks)} for a in images],
            [str(p) for p in [*companions, paths.final]],
            [a.name for a in tile_map_arrays(arrays)],
        )

    paths.final.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(paths.final):
        if _already_complete(paths, header, overwrite=overwrite, resume=resume):
            log.info("%s is already complete with these settings; nothing to do", paths.final)
            fmt.write_companions(out, images, meta)  # a crash may have come between the two
            return result(0, total)
        for c in companions:  # an old companion must never describe the new data file
            c.unlink(missing_ok=True)
        if mode is WriteMode.single:
            written, skipped = _write_single(
                sources, paths, arrays, header, enc, fmt, meta, progress, resume,
                batch_bytes, batch_seconds,
            )  # fmt: skip
        else:
            assert shard is not None
            written, skipped = write_sharded(
                sources, paths, arrays, header, codec, cast("HDF5Format", fmt), meta,
                mode=mode, shard=shard, resume=resume, progress=progress,
            )  # fmt: skip
        fmt.write_companions(out, images, meta)
    return result(written, skipped)


def _plan_run(
    mosaic: Mosaic,
    fmt: Format,
    dataset: str,
    chunks: tuple[int, ...] | None,
    levels: int | str | None,
    n_channels: int,
    codec: ChunkCodec,
    fingerprint: str | dict[str, Any],
    mode: WriteMode,
    shard: tuple[int, ...] | None,
    pixel_size: float | None,
    tile_map: TileMap | None = None,
) -> tuple[tuple[int, ...], list[ArraySpec], tuple[int, ...] | None, dict]:
    """A run's storage chunks, arrays, shard shape (the shard write modes) and header."""
    shape = tuple(mosaic.shape)
    chunks = storage_chunks(shape, chunks)
    check_chunk_count(shape, chunks, mosaic.dtype.itemsize)
    if tile_map is not None and tuple(tile_map.labels.shape[-2:]) != shape[-2:]:
        raise ValueError(f"the tile map is {tile_map.labels.shape}, the mosaic {shape}")
    arrays = plan_arrays(
        fmt, dataset, shape, mosaic.dtype, chunks, levels, channels=n_channels,
        tile_map=None if tile_map is None else tile_map.labels.dtype,
    )  # fmt: skip
    if mode is WriteMode.virtual and any(a.split for a in arrays):
        raise ConfigError(
            f"output.write_mode: virtual cannot store the {fmt.name} format's channels as "
            "datasets of their own; use single or shards"
        )
    shard = None if mode is WriteMode.single else shard_shape(mosaic.ndim, shard)
    header = run_header(
        arrays,
        layout=fmt.name,
        codec=str(codec),
        fingerprint=fingerprint,
        shard=shard,
        pixel_size=pixel_size,
    )
    return chunks, arrays, shard, header


def _write_tiff(
    mosaic: Mosaic,
    out: Path,
    fmt: OmeTiff,
    codec: ChunkCodec,
    inputs: Sequence[str | os.PathLike],
    overwrite: bool,
    resume: bool,
    levels_run: dict[str, Any],
) -> WriteResult:
    """The OME-TIFF: the pyramid through the core into ``OUT.partial.levels.h5`` (journaled,
    resumable), then converted into ``OUT.partial`` and renamed to ``OUT`` (see
    ``_format_ometiff``)."""
    t0 = time.perf_counter()
    inputs_ = [Path(p) for p in inputs]
    paths = check_output(out, overwrite=overwrite, resume=resume, inputs=inputs_)
    levels_file = fmt.levels_path(paths.final)
    check_output(levels_file, overwrite=overwrite, resume=resume, inputs=inputs_)
    run = levels_run
    mode = WriteMode(run["mode"])
    n_channels = len(run["channels"] or ())
    _, arrays, _, levels_header = _plan_run(
        mosaic, PlainHDF5(), "mosaic", run["chunks"], run["levels"], n_channels,
        ChunkCodec(), run["fingerprint"], mode, run["shard"], run["pixel_size"], run["tile_map"],
    )  # fmt: skip
    header = {**levels_header, "tiff": str(codec)}
    images = image_arrays(arrays)

    def result(written: int, skipped: int) -> WriteResult:
        return WriteResult(
            paths.final, "0", tuple(mosaic.shape), str(mosaic.dtype), arrays[0].chunks,
            str(codec), sum(a.n_chunks for a in arrays), written, skipped,
            time.perf_counter() - t0, mode.value, fmt.name,
            [{"name": str(a.level), "shape": list(a.shape), "chunks": [TILE] * 2} for a in images],
            [str(paths.final)], [f"{TILE_MAP}/{a.level}" for a in tile_map_arrays(arrays)],
        )  # fmt: skip

    with output_lock(paths.final):

        def matches() -> bool:
            old = tiff_header(paths.final)
            return old is not None and not differences(old, header)

        if refuse_clobber(paths, overwrite=overwrite, resume=resume, final_matches=matches):
            remove(levels_file)  # a crash came after the rename: the TIFF is complete
            return result(0, sum(a.n_chunks for a in arrays))
        res = write_hdf5(
            mosaic, levels_file, codec="none", overwrite=overwrite, resume=resume,
            inputs=inputs, format="hdf5", **levels_run,
        )  # fmt: skip
        channels = levels_run["channels"]
        meta = Metadata(
            levels_run["pixel_size"], {}, str(mosaic.dtype),
            tuple(channels) if channels else None, levels_run["axes"],
        )  # fmt: skip
        paths.partial.unlink(missing_ok=True)
        try:
            fmt.convert(levels_file, "mosaic", paths.partial, meta, codec, header)
        except BaseException:
            paths.partial.unlink(missing_ok=True)  # the complete levels stay, for --resume
            raise
        durable_replace(paths.partial, paths.final)
        remove(levels_file)
    return result(res.chunks_written, res.chunks_skipped)


def _already_complete(paths: OutputPaths, header: dict, *, overwrite: bool, resume: bool) -> bool:
    """Refuse to clobber (again, under the lock); return True if the final output is already
    complete and matching. ``overwrite`` clears what an earlier run left."""

    def matches() -> bool:
        old = final_header(paths.final, header["dataset"])
        return old is not None and not differences(old, header)

    if refuse_clobber(paths, overwrite=overwrite, resume=resume, final_matches=matches):
        return True
    if overwrite and not resume:
        for p in paths.leftovers():
            remove(p)
    return False


def _single_stream(
    sources: list[Mosaic],
    arrays: list[ArraySpec],
    codec: Encoder,
    done: set[Unit],
    out: ChunkFile | ZarrChunkStore,
) -> tuple[BackgroundWriter, Iterator[tuple[UnitTask, tuple]]]:
    """The writer thread and the stream of (task, result) that feeds it. The pyramid is
    built by the writer thread from level 0's halves when the chunk edges allow it (see
    ``_pyramid``), else computed on the workers with every level's own tasks."""
    if len(image_arrays(arrays)) > 1 and halves_align(arrays):
        graph, todo, wanted, needed = sources_graph(level0_graph, sources, arrays, codec, done)
        writer = BackgroundWriter(out, PyramidBuilder(arrays, codec, wanted, needed))
    else:
        graph, todo, _, _ = sources_graph(unit_graph, sources, arrays, codec, done)
        writer = BackgroundWriter(out)
    by_unit = {t.unit: t for t in todo}
    # groups of ~GROUP_BYTES of chunks: a few groups in flight then hold little memory
    batch = max(1, GROUP_BYTES // arrays[0].chunk_nbytes)
    stream = ((by_unit[u], r) for u, r in stream_groups(graph, todo, batch=batch))
    return writer, stream


def _write_single(
    sources: list[Mosaic],
    paths: OutputPaths,
    arrays: list[ArraySpec],
    header: dict,
    codec: Encoder,
    fmt: Format,
    meta: Metadata,
    progress: ProgressFn | None,
    resume: bool,
    batch_bytes: int,
    batch_seconds: float,
) -> tuple[int, int]:
    """Write mode single, under the output's lock: (units written, units reused)."""
    total = sum(a.n_chunks for a in arrays)
    out: ChunkFile | ZarrChunkStore
    if isinstance(fmt, OmeZarr):  # resumes in place, from the journaled files that verify
        assert isinstance(codec, ZarrCodec)
        out = ZarrChunkStore(
            paths, arrays, header, codec, fmt, meta, batch_bytes, batch_seconds, resume
        )
        source = None
    else:
        assert isinstance(codec, ChunkCodec)
        source = resume_source(paths, header) if resume else None
        out = ChunkFile(
            paths.partial, paths.journal, arrays, header, codec, cast("HDF5Format", fmt), meta,
            batch_bytes, batch_seconds,
        )  # fmt: skip
    try:
        if isinstance(out, ZarrChunkStore):
            done: set[Unit] = set(out.done)
        else:
            done = copy_verified(*source, out) if source else set()
        if source:
            source[0].unlink(missing_ok=True)
            source[1].unlink(missing_ok=True)
        skipped = len(done)
        if progress:
            progress(skipped, total)
        writer, stream = _single_stream(sources, arrays, codec, done, out)
        try:
            for n, (task, result) in enumerate(stream, 1):
                data, mask, crc, *half = result
                writer.put(task.unit, data, mask, crc, half[0] if half else None, task.write)
                if progress:
                    progress(min(skipped + n, total), total)
        finally:
            writer.close()
        if writer.pyramid is not None and writer.pyramid.pending:
            raise RuntimeError(f"{writer.pyramid.pending} pyramid chunk(s) were left incomplete")
        if progress:
            progress(total, total)
        out.close_complete()  # a Zarr folder is renamed into place by its store
        if isinstance(out, ChunkFile):
            durable_replace(paths.partial, paths.final)
            remove(paths.virtual_shards)  # an old virtual output's shards, now replaced
            out.journal.close()
            paths.journal.unlink(missing_ok=True)
    except BaseException:
        out.abort()
        raise
    return out.written - skipped, skipped
