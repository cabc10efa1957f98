"""Committing encoded units into the partial OME-Zarr folder, durably (the Zarr side of
``_commit``: the same ``write``/``commit``/``close_complete``/``abort`` for the core).

``OUT.partial/`` is a Zarr group whose arrays zarr-python created; each unit's bytes go into
the file of its chunk (or shard) key, written by this process's writing thread only. A batch
is made durable (every file of the batch and the folders that hold their names fsync'ed, then
the journal) by bytes or age, on a thread of its own while writing goes on.

Resume continues in place: the journal's units whose files still verify (size and CRC-32)
are kept, the rest are recomputed and overwritten; the arrays are not recreated. On success
the group's ``lazystitch`` attribute is marked complete and the folder renamed to ``OUT``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from lazystitch.writers._commit import BackgroundSync
from lazystitch.writers._contrast import contrast_level, contrast_windows
from lazystitch.writers._files import (
    OutputPaths,
    check_same_settings,
    fsync_path,
    remove,
)
from lazystitch.writers._format import Metadata
from lazystitch.writers._format_omezarr import OmeZarr, ZarrCodec
from lazystitch.writers._journal import ChunkRecord, Journal, read_journal
from lazystitch.writers._plan import ArraySpec, Unit, image_arrays, tile_map_arrays

__all__ = ["ZarrChunkStore", "replace_folder"]

log = logging.getLogger(__name__)


def replace_folder(src: Path, dst: Path, aside: Path) -> None:
    """Put the finished folder ``src`` at ``dst`` so that it survives a crash. An old
    ``dst`` is moved to ``aside`` first and deleted once the new one is in place (between
    the two renames, a crash leaves ``aside`` for the next run to report)."""
    fsync_path(src)
    if dst.exists():
        os.replace(dst, aside)
    os.replace(src, dst)
    fsync_path(dst.parent)
    remove(aside)


class ZarrChunkStore:
    """The partial OME-Zarr folder, written by this process only, plus its journal."""

    def __init__(
        self,
        paths: OutputPaths,
        arrays: list[ArraySpec],
        header: dict,
        codec: ZarrCodec,
        fmt: OmeZarr,
        meta: Metadata,
        batch_bytes: int,
        batch_seconds: float,
        resume: bool,
    ) -> None:
        import zarr

        self.paths, self.arrays, self.header = paths, arrays, header
        self.fmt, self.meta, self.codec = fmt, meta, codec
        self.batch_bytes, self.batch_seconds = batch_bytes, batch_seconds
        self.root = paths.partial
        self.zarrs: list[Any] = []
        kept: dict[Unit, ChunkRecord] = {}
        old_header = None
        if resume and self.root.is_dir() and paths.journal.exists():
            try:
                old_header, records = read_journal(paths.journal)
            except (ValueError, OSError):
                old_header = None
        if old_header is not None:
            check_same_settings(self.root, old_header, header)
            self.group = zarr.open_group(self.root, mode="r+")
            self.zarrs = [self.group[a.name] for a in arrays]
            kept = self._verified(records)
        else:
            self._create()
        self.done: set[Unit] = set(kept)
        journal_new = paths.journal.with_name(paths.journal.name + ".new")
        self.journal = Journal(journal_new, header)
        self.journal.append(kept.values())
        os.replace(journal_new, paths.journal)  # the open file follows its inode
        self.journal.path = paths.journal
        fsync_path(paths.journal.parent)
        self.pending: list[tuple[ChunkRecord, Path]] = []
        self.pending_bytes = 0
        self.last_sync = time.monotonic()
        self.written = len(kept)
        self._made_dirs: set[Path] = set()
        self.syncer = BackgroundSync()

    # --- creating and resuming -----------------------------------------------------------

    def _create(self) -> None:
        import zarr

        remove(self.root)
        remove(self.paths.journal)
        self.group = zarr.open_group(self.root, mode="w", zarr_format=self.fmt.zarr_format)
        names = self.fmt.axes(self.arrays, self.meta)
        images, tile_map = image_arrays(self.arrays), tile_map_arrays(self.arrays)
        if tile_map:  # the NGFF labels group and the tile map's image-label group
            attrs = self.fmt.label_attrs(images, tile_map, self.meta)
            for path, group_attrs in attrs.items():
                self.group.require_group(path).attrs.put(group_attrs)
        for a in self.arrays:
            kw = self.codec.for_array(a).array_kwargs(a.shape, a.dtype, a.chunks)
            del kw["zarr_format"]  # the group's
            if self.fmt.zarr_format == 3:
                kw["dimension_names"] = list(names)
            self.zarrs.append(self.group.create_array(a.name, **kw))
        self._write_attrs(complete=False)
        for p in [self.root, *self.root.rglob("*")]:
            fsync_path(p)

    def _write_attrs(self, complete: bool, windows: list | None = None) -> None:
        run = {"run": self.header, "complete": complete}
        attrs = self.fmt.group_attrs(image_arrays(self.arrays), self.meta, run, windows)
        self.group.attrs.put(attrs)

    def _verified(self, records: dict[Unit, ChunkRecord]) -> dict[Unit, ChunkRecord]:
        kept, bad = {}, 0
        for unit, rec in records.items():
            if not 0 <= unit[0] < len(self.arrays):
                bad += 1
                continue
            try:
                data = self.key_path(unit).read_bytes()
            except OSError:
                bad += 1
                continue
            if rec.matches(data, 0):
                kept[unit] = rec
            else:
                bad += 1
        if bad:
            log.warning("%d journaled unit(s) of %s did not verify; recomputing", bad, self.root)
        return kept

    def key_path(self, unit: Unit) -> Path:
        array, index = unit
        key = self.zarrs[array].metadata.encode_chunk_key(tuple(index))
        return self.root / self.arrays[array].name / key

    # --- writing -------------------------------------------------------------------------

    def write(self, unit: Unit, data: Any, mask: int, crc32: int) -> None:
        path = self.key_path(unit)
        if path.parent not in self._made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(path.parent)
        with open(path, "wb") as fh:
            fh.write(memoryview(data).cast("B"))
        nbytes = memoryview(data).nbytes
        rec = ChunkRecord((unit[0], tuple(int(i) for i in unit[1])), nbytes, crc32, 0)
        self.pending.append((rec, path))
        self.pending_bytes += nbytes
        self.written += 1
        if (
            self.pending_bytes >= self.batch_bytes
            or time.monotonic() - self.last_sync >= self.batch_seconds
        ):
            batch, self.pending, self.pending_bytes = self.pending, [], 0
            self.last_sync = time.monotonic()
            self.syncer.start(self._sync, batch)

    def _sync(self, batch: list[tuple[ChunkRecord, Path]]) -> None:
        for _, path in batch:
            fsync_path(path)
        for folder in {p.parent for _, p in batch}:  # the new names
            fsync_path(folder)
        self.journal.append(r for r, _ in batch)

    def commit(self) -> None:
        self.syncer.wait()
        if self.pending:
            self._sync(self.pending)
            self.pending, self.pending_bytes = [], 0
        self.last_sync = time.monotonic()

    def close_complete(self) -> None:
        """Commit, record the contrast windows and mark the group complete; then rename the
        folder into place (replacing an old output only now) and drop the journal."""
        self.commit()
        channels = self.fmt.axes(self.arrays, self.meta).startswith("c")
        level = contrast_level([a.shape for a in image_arrays(self.arrays)], channels)
        windows = contrast_windows(self.zarrs[level], channels)
        self._write_attrs(complete=True, windows=windows)
        meta_file = self.root / ("zarr.json" if self.fmt.zarr_format == 3 else ".zattrs")
        fsync_path(meta_file)
        replace_folder(self.root, self.paths.final, self.paths.prev)
        self.journal.close()
        self.paths.journal.unlink(missing_ok=True)

    def abort(self) -> None:
        try:
            self.commit()
        finally:
            self.syncer.join()
            self.journal.close()
