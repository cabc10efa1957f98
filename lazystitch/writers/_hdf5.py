"""Stream a lazy mosaic into one chunked HDF5 dataset: exactly once, whole chunks, resumable.

Workers compute and encode whole storage chunks; this process alone opens the file and writes
the encoded bytes with ``write_direct_chunk`` in batches. After each batch the file is flushed
and fsync'ed, then the batch's chunks are appended to a journal. The file is written as
``OUT.partial`` and renamed to ``OUT`` only when complete. ``resume`` copies the journaled chunks
whose bytes still verify (CRC-32) into a fresh partial file and computes only the rest.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import h5py
import numpy as np

from lazystitch.errors import (
    LazystitchWarning,
    ResumeMismatchError,
)
from lazystitch.writers._chunks import chunk_counts, chunk_graph
from lazystitch.writers._codec import ChunkCodec
from lazystitch.writers._files import (
    COMPLETE_ATTR,
    LIBVER,
    OutputPaths,
    check_same_settings,
    create_dataset,
    differences,
    durable_replace,
    final_header,
    remove,
)
from lazystitch.writers._journal import ChunkIndex, ChunkRecord, Journal, read_journal
from lazystitch.writers._locks import output_lock
from lazystitch.writers._shards import WriteMode, shard_shape, write_sharded
from lazystitch.writers._stream import stream_chunks
from lazystitch.writers._target import check_chunk_count, check_output, refuse_clobber

__all__ = ["OutputPaths", "WriteResult", "storage_chunks", "write_hdf5"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


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

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["out"] = str(self.out)
        d["shape"], d["chunks"] = list(self.shape), list(self.chunks)
        return d


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


def _run_header(
    mosaic: da.Array,
    dataset: str,
    chunks: tuple[int, ...],
    codec: ChunkCodec,
    fingerprint: str | dict[str, Any],
    shard: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    header = {
        "format": 1,
        "dataset": dataset,
        "shape": list(mosaic.shape),
        "dtype": str(mosaic.dtype),
        "chunks": list(chunks),
        "compression": str(codec),
        "inputs": fingerprint,
    }
    if shard is not None:  # the shard write modes; their files hold the same chunk bytes
        header["shard"] = list(shard)
    return header


class _ChunkFile:
    """The partial HDF5 file, open for writing in this process only, plus its journal."""

    def __init__(
        self,
        paths: OutputPaths,
        header: dict,
        codec: ChunkCodec,
        attrs: dict[str, Any],
        batch_bytes: int,
        batch_seconds: float,
        resume: bool = False,
    ) -> None:
        self.paths = paths
        # a run to resume from is moved aside before the new partial file is created
        self.resume_source = _resume_source(paths, header) if resume else None
        self.chunks = tuple(header["chunks"])
        self.batch_bytes, self.batch_seconds = batch_bytes, batch_seconds
        self.file = h5py.File(paths.partial, "w", libver=LIBVER)
        self.ds = create_dataset(self.file, header, codec, attrs)
        self._sync_file()
        self.journal = Journal(paths.journal, header)
        self.pending: list[ChunkRecord] = []
        self.pending_bytes = 0
        self.last_sync = time.monotonic()
        self.written = 0

    def write(self, index: ChunkIndex, data: bytes | np.ndarray, mask: int, crc32: int) -> None:
        offset = tuple(i * c for i, c in zip(index, self.chunks, strict=True))
        self.ds.id.write_direct_chunk(offset, data, filter_mask=mask)
        nbytes = memoryview(data).nbytes  # type: ignore[arg-type]  # an ndarray is a buffer
        self.pending.append(ChunkRecord(tuple(int(i) for i in index), nbytes, crc32, int(mask)))
        self.pending_bytes += nbytes
        self.written += 1
        if (
            self.pending_bytes >= self.batch_bytes
            or time.monotonic() - self.last_sync >= self.batch_seconds
        ):
            self.commit()

    def commit(self) -> None:
        """Make every chunk written so far durable, then journal it."""
        if not self.pending:
            return
        self._sync_file()
        self.journal.append(self.pending)
        self.pending, self.pending_bytes = [], 0
        self.last_sync = time.monotonic()

    def _sync_file(self) -> None:
        self.file.flush()
        os.fsync(self.file.id.get_vfd_handle())

    def finish(self) -> None:
        """Mark complete, close, and atomically rename the partial file into place."""
        self.commit()
        self.ds.attrs[COMPLETE_ATTR] = True
        self.file.close()
        durable_replace(self.paths.partial, self.paths.final)
        remove(self.paths.virtual_shards)  # an old virtual output's shards, now replaced
        self.journal.close()
        self.paths.journal.unlink(missing_ok=True)

    def abort(self) -> None:
        """Keep what was durably written (for ``resume``) and close everything."""
        try:
            self.commit()
        finally:
            if self.file.id.valid:
                self.file.close()
            self.journal.close()


def _check_paths(paths: OutputPaths, header: dict, *, overwrite: bool, resume: bool) -> bool:
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


def _resume_source(paths: OutputPaths, header: dict) -> tuple[Path, Path] | None:
    """Pick the partial run to resume from, after checking it was made with the same settings.

    Files are only moved once the check has passed.
    """
    if paths.shards.exists():
        raise ResumeMismatchError(
            f"cannot resume {paths.shards}: it was started with a shard write mode (shards or "
            "virtual); resume with that mode, or pass --overwrite to start over"
        )
    if paths.prev.exists() and paths.prev_journal.exists():  # a resume died while copying
        src, src_journal = paths.prev, paths.prev_journal
    elif paths.partial.exists() and paths.journal.exists():
        src, src_journal = paths.partial, paths.journal
    else:
        for p in paths.leftovers():  # nothing usable (no journal): start afresh
            remove(p)
        return None
    try:
        old_header, _ = read_journal(src_journal)
    except (ValueError, OSError):
        old_header = None
    if old_header is not None:
        check_same_settings(src, old_header, header)
    if src == paths.partial:
        os.replace(paths.partial, paths.prev)
        os.replace(paths.journal, paths.prev_journal)
    else:
        paths.partial.unlink(missing_ok=True)
        paths.journal.unlink(missing_ok=True)
    return paths.prev, paths.prev_journal


def _copy_verified(src: Path, src_journal: Path, dst: _ChunkFile, dataset: str) -> set[ChunkIndex]:
    """Copy each journaled chunk whose bytes still verify from ``src`` into ``dst``."""
    try:
        _, records = read_journal(src_journal)
    except (ValueError, OSError):
        records = {}
    copied: set[ChunkIndex] = set()
    bad = 0
    try:
        with h5py.File(src, "r") as f:
            ds = f[dataset]
            for index, rec in sorted(records.items()):
                offset = tuple(i * c for i, c in zip(index, dst.chunks, strict=True))
                try:
                    mask, data = ds.id.read_direct_chunk(offset)
                except (OSError, KeyError, ValueError):
                    bad += 1
                    continue
                if rec.matches(data, mask):
                    dst.write(index, bytes(data), mask, rec.crc32)
                    copied.add(index)
                else:
                    bad += 1
    except (OSError, KeyError) as exc:
        warnings.warn(
            f"could not reopen the partial run {src} ({exc}); recomputing all chunks",
            LazystitchWarning,
            stacklevel=3,
        )
        bad = len(records)
    if bad:
        log.warning("%d journaled chunk(s) of %s did not verify and will be recomputed", bad, src)
    dst.commit()
    return copied


def write_hdf5(
    mosaic: da.Array,
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
    batch_bytes: int = 64 << 20,
    batch_seconds: float = 1.0,
    inputs: Sequence[str | os.PathLike] = (),
) -> WriteResult:
    """Compute ``mosaic`` and store it in ``path`` as one chunked dataset.

    Parameters
    ----------
    mosaic : dask.array.Array
        The lazy mosaic (any chunking; it is rechunked to ``chunks``).
    path : path-like
        The output HDF5 file. It appears only when complete; meanwhile ``PATH.partial`` and
        ``PATH.partial.journal`` hold the run in progress.
    dataset : str
        Dataset name inside the file.
    chunks : tuple of int, optional
        Storage chunk shape, ``(Y, X)`` or one per axis (see :func:`storage_chunks`).
    codec : ChunkCodec or str
        Compression, e.g. ``"none"``, ``"gzip:4"``, ``"lzf"``, ``"blosc"``, ``"zstd"``.
    attrs : dict, optional
        Attributes stored on the dataset.
    fingerprint : str or dict
        Identifies the inputs (tiles, positions, blending); ``resume`` refuses a partial run made
        from different inputs or settings. A dict (JSON-able) is compared entry by entry, so the
        refusal names what changed (``{"tiles": {path: stamp}, "positions": hash, ...}``).
    overwrite : bool
        Replace an existing output (only when the new one is complete) or partial run.
    resume : bool
        Continue a partial run, recomputing only chunks not durably written.
    progress : callable(done, total), optional
        Called as chunks are written.
    mode : {"single", "shards", "virtual"}
        ``single``: workers encode chunks and this process writes them (one machine).
        ``shards``: workers write shard files beside the output (a filesystem they all see),
        assembled at the end into one self-contained file by copying the compressed chunk
        bytes. ``virtual``: the shards stay in ``PATH.shards/`` and ``PATH`` is a virtual
        dataset over them. All three give the same data; ``single`` and ``shards`` the same
        chunk bytes.
    shard : tuple of int, optional
        Shard size in storage chunks, ``(Y, X)`` or one per axis (default 4 x 4).
    batch_bytes, batch_seconds : int, float
        A batch of written chunks is made durable (flush, fsync, journal) when it reaches this
        many bytes or this age.
    inputs : sequence of path-like
        The files the mosaic is made from (tiles, positions): ``path`` may not be one of them.

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
        tiny chunks. A run holds ``PATH.lock`` (host and
        pid) while it works; a second run on the same output is refused, and a lock left by a
        dead process on this host is reported and taken over.

    Notes
    -----
    Uses the active ``distributed`` Client if there is one (never starts one), else the local
    dask scheduler. No h5py object leaves this process, and only this process opens the file.
    """
    t0 = time.perf_counter()
    codec = codec if isinstance(codec, ChunkCodec) else ChunkCodec.parse(codec)
    mode = WriteMode(mode)
    paths = check_output(path, overwrite=overwrite, resume=resume, inputs=[Path(p) for p in inputs])
    chunks = storage_chunks(mosaic.shape, chunks)
    check_chunk_count(tuple(mosaic.shape), chunks, mosaic.dtype.itemsize)
    shard = None if mode is WriteMode.single else shard_shape(mosaic.ndim, shard)
    header = _run_header(mosaic, dataset, chunks, codec, fingerprint, shard)
    total = math.prod(chunk_counts(mosaic.shape, chunks))

    def result(written: int, skipped: int) -> WriteResult:
        return WriteResult(
            paths.final,
            dataset,
            tuple(mosaic.shape),
            str(mosaic.dtype),
            chunks,
            str(codec),
            total,
            written,
            skipped,
            time.perf_counter() - t0,
            mode.value,
        )

    paths.final.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(paths.final):
        if _check_paths(paths, header, overwrite=overwrite, resume=resume):
            log.info("%s is already complete with these settings; nothing to do", paths.final)
            return result(0, total)
        if mode is WriteMode.single:
            out = _ChunkFile(paths, header, codec, attrs or {}, batch_bytes, batch_seconds, resume)
            written, skipped = _write_locked(mosaic, out, codec, progress)
        else:
            assert shard is not None
            written, skipped = write_sharded(
                mosaic,
                paths,
                header,
                codec,
                attrs or {},
                mode=mode,
                shard=shard,
                resume=resume,
                progress=progress,
            )
    return result(written, skipped)


def _write_locked(
    mosaic: da.Array, out: _ChunkFile, codec: ChunkCodec, progress: ProgressFn | None
) -> tuple[int, int]:
    """The run itself, under the output's lock: returns (chunks written, chunks reused)."""
    total = math.prod(chunk_counts(mosaic.shape, out.chunks))
    source = out.resume_source
    try:
        done = _copy_verified(*source, out, out.ds.name.lstrip("/")) if source else set()
        if source:
            source[0].unlink(missing_ok=True)
            source[1].unlink(missing_ok=True)
        skipped = len(done)
        if progress:
            progress(skipped, total)
        graph, todo = chunk_graph(mosaic, out.chunks, codec, done)
        for index, (data, mask, crc) in stream_chunks(graph, todo):
            out.write(index, data, mask, crc)
            if progress:
                progress(out.written, total)
        out.finish()
    except BaseException:
        out.abort()
        raise
    return out.written - skipped, skipped
