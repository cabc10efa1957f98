"""What is already durable: the partial run a ``resume`` continues, checked and copied."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import h5py

from lazystitch.errors import LazystitchWarning, ResumeMismatchError
from lazystitch.writers._commit import ChunkFile
from lazystitch.writers._files import OutputPaths, check_same_settings, remove
from lazystitch.writers._journal import read_journal
from lazystitch.writers._plan import Unit

__all__ = ["copy_verified", "resume_source"]

log = logging.getLogger(__name__)


def resume_source(paths: OutputPaths, header: dict) -> tuple[Path, Path] | None:
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


def copy_verified(src: Path, src_journal: Path, dst: ChunkFile) -> set[Unit]:
    """Copy each journaled unit whose bytes still verify from ``src`` into ``dst``."""
    try:
        _, records = read_journal(src_journal)
    except (ValueError, OSError):
        records = {}
    copied: set[Unit] = set()
    bad = 0
    try:
        with h5py.File(src, "r") as f:
            datasets = [[f[a.dataset_name(c)] for c in range(a.planes)] for a in dst.arrays]
            for unit, rec in sorted(records.items()):
                array, index = unit
                if not 0 <= array < len(datasets):
                    bad += 1
                    continue
                try:
                    plane, offset = dst.arrays[array].target(index)
                    mask, data = datasets[array][plane].id.read_direct_chunk(offset)
                except (OSError, KeyError, ValueError):
                    bad += 1
                    continue
                if rec.matches(data, mask):
                    dst.write(unit, bytes(data), mask, rec.crc32)
                    copied.add(unit)
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
