"""Checks of an output path that need no cluster and change nothing: run before any work."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from lazystitch.errors import OutputExistsError, OutputTargetError, PartialOutputError
from lazystitch.writers._files import OutputPaths
from lazystitch.writers._locks import check_unlocked

__all__ = [
    "MAX_SMALL_CHUNKS",
    "check_chunk_count",
    "check_output",
    "check_output_target",
    "foreign_entries",
    "refuse_clobber",
]

# a shard folder holds only these: whole shard files and the temporary names they are written to
_SHARD_NAME = re.compile(r"shard(_\d+)+\.h5(\.[0-9a-f]+\.tmp)?")
MAX_SMALL_CHUNKS = 10_000  # more chunks than this must each be at least MIN_CHUNK_BYTES
MIN_CHUNK_BYTES = 64 << 10


def foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that lazystitch did not write (a shard folder holds only shards)."""
    if not folder.is_dir():
        return [] if not folder.exists() else [folder.name]
    return sorted(e.name for e in os.scandir(folder) if not _SHARD_NAME.fullmatch(e.name))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.absolute() == b.absolute()


def check_output_target(
    path: str | os.PathLike,
    *,
    inputs: Iterable[Path] = (),
    what: str = "output",
    folder: bool = False,
) -> Path:
    """Refuse an output path that names an input of the run, a folder (with ``folder``, an
    output that is a folder: a file, or a folder lazystitch did not write), a device, or a
    place that cannot be written; return it absolute.

    Raises
    ------
    OutputTargetError
        Naming the path and what is wrong with it. Nothing on disk is changed.
    """
    p = Path(path)
    if folder and p.exists():
        from lazystitch.writers._format_omezarr import is_zarr_output

        if not p.is_dir():
            raise OutputTargetError(
                f"{what} {p} is a file, and an OME-Zarr output is a folder; choose another path"
            )
        if not is_zarr_output(p):
            raise OutputTargetError(
                f"{what} {p} is a folder that lazystitch did not write; move it away or "
                "choose another output path"
            )
    elif p.is_dir():
        raise OutputTargetError(f"{what} {p} is a folder; name a file in it, e.g. {p}/mosaic.h5")
    if p.exists() and not p.is_file() and not folder:
        raise OutputTargetError(f"{what} {p} is not a regular file (a device, pipe or socket)")
    for inp in inputs:
        if _same_file(p, Path(inp)):
            raise OutputTargetError(
                f"{what} {p} is an input of this run ({inp}); choose another output path"
            )
    parent = p.absolute().parent
    existing = next((d for d in (parent, *parent.parents) if d.exists()), None)
    if existing is not None and not existing.is_dir():
        raise OutputTargetError(f"{what} {p}: {existing} is a file, not a folder")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise OutputTargetError(f"{what} {p}: cannot write in {existing} (permission denied)")
    return p.absolute()


def check_chunk_count(shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int) -> None:
    """Refuse a chunking that makes a huge number of tiny chunks (each one is a task)."""
    n = math.prod(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))
    nbytes = math.prod(chunks) * itemsize
    if n > MAX_SMALL_CHUNKS and nbytes < MIN_CHUNK_BYTES:
        side = max(64, math.isqrt(MIN_CHUNK_BYTES // max(itemsize, 1)))
        raise OutputTargetError(
            f"output.chunks {'x'.join(map(str, chunks))} cuts the {'x'.join(map(str, shape))} "
            f"mosaic into {n:,} chunks of {nbytes:,} bytes; use chunks of at least "
            f"{MIN_CHUNK_BYTES >> 10} KiB (e.g. --chunks {side},{side})"
        )


def check_output(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    resume: bool = False,
    inputs: Iterable[Path] = (),
    folder: bool = False,
) -> OutputPaths:
    """Everything about an output that can be checked before any work, without changing
    anything: the path itself (:func:`check_output_target`), an existing output or partial
    run (refused unless ``overwrite``/``resume``), folders beside it that lazystitch did not
    write, and a live run holding its lock.

    Raises
    ------
    OutputTargetError, OutputExistsError, PartialOutputError, OutputLockedError
    """
    paths = OutputPaths(check_output_target(path, inputs=inputs, folder=folder))
    for shards in (paths.shards, paths.virtual_shards):
        foreign = foreign_entries(shards)
        if foreign:
            raise OutputTargetError(
                f"{shards} holds files lazystitch did not write ({', '.join(foreign[:3])}); "
                "move it away or choose another output path"
            )
    refuse_clobber(paths, overwrite=overwrite, resume=resume)
    check_unlocked(paths.final)
    return paths


def refuse_clobber(
    paths: OutputPaths,
    *,
    overwrite: bool,
    resume: bool,
    final_matches: Callable[[], bool] | None = None,
) -> bool:
    """Refuse to replace an output or a partial run that was not given up; True if ``resume``
    finds the output complete with these settings (``final_matches``; None: not known yet,
    decided once the run's settings are).

    Raises
    ------
    OutputExistsError, PartialOutputError
    """
    if paths.final.exists() and not overwrite:
        if resume and (final_matches is None or final_matches()):
            return final_matches is not None
        raise OutputExistsError(
            f"output {paths.final} already exists; pass --overwrite to replace it"
        )
    leftovers = paths.leftovers()
    if leftovers and not (resume or overwrite):
        raise PartialOutputError(
            f"a partial run was left at {leftovers[0]}; pass --resume to continue it or "
            "--overwrite to start over"
        )
    return False
