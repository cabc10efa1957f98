"""The files of an output: their names, the dataset they hold, and durable renames."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lazystitch.errors import ResumeMismatchError
from lazystitch.writers._codec import ChunkCodec

__all__ = [
    "COMPLETE_ATTR",
    "LIBVER",
    "RUN_ATTR",
    "VIRTUAL_LIBVER",
    "OutputPaths",
    "check_same_settings",
    "create_dataset",
    "differences",
    "durable_replace",
    "final_header",
    "fsync_path",
    "remove",
]

COMPLETE_ATTR = "lazystitch_complete"
RUN_ATTR = "lazystitch_run"
LIBVER = ("v108", "v108")  # HDF5 >= 1.8 can read it; allows attributes > 64 KiB (tile tables)
VIRTUAL_LIBVER = ("v110", "v110")  # virtual datasets need HDF5 >= 1.10


@dataclass(frozen=True)
class OutputPaths:
    """The final path and the files of a run in progress beside it."""

    final: Path

    def _beside(self, suffix: str) -> Path:
        return self.final.with_name(self.final.name + suffix)

    @property
    def partial(self) -> Path:
        return self._beside(".partial")

    @property
    def journal(self) -> Path:
        return self._beside(".partial.journal")

    @property
    def prev(self) -> Path:
        return self._beside(".partial.prev")

    @property
    def prev_journal(self) -> Path:
        return self._beside(".partial.prev.journal")

    @property
    def shards(self) -> Path:
        """Folder of the shard files of a run in progress (write modes ``shards``, ``virtual``)."""
        return self._beside(".partial.shards")

    @property
    def virtual_shards(self) -> Path:
        """Folder of the shard files a finished ``virtual`` output reads from."""
        return self._beside(".shards")

    def leftovers(self) -> list[Path]:
        """What an interrupted run left (the final output's own shard folder is not one)."""
        found = [self.partial, self.journal, self.prev, self.prev_journal, self.shards]
        if not self.final.exists():
            found.append(self.virtual_shards)  # a virtual run that died while finishing
        return [p for p in found if p.exists()]


def remove(path: Path) -> None:
    """Delete a file or a folder (a shard folder), if it exists."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_replace(src: Path, dst: Path) -> None:
    """Rename a finished file (or folder) into place so that it survives a crash: fsync it,
    rename it, fsync the folder that holds the new name."""
    fsync_path(src)
    os.replace(src, dst)
    fsync_path(dst.parent)


def differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def check_same_settings(what: Path, old: dict, new: dict) -> None:
    """Refuse to resume from ``what`` (a partial file or a shard) made with other settings."""
    diff = differences(old, new)
    if diff:
        raise ResumeMismatchError(
            f"cannot resume from {what}: it was made with other settings ("
            + "; ".join(diff)
            + "); pass --overwrite to start over"
        )


def create_dataset(
    file: h5py.File,
    header: dict,
    codec: ChunkCodec,
    attrs: dict[str, Any],
    shape: tuple[int, ...] | None = None,
) -> h5py.Dataset:
    """The chunked dataset a run writes (``shape`` overrides the mosaic's, for a shard),
    marked incomplete and carrying the run header that ``resume`` checks."""
    ds = file.create_dataset(
        header["dataset"],
        shape=tuple(header["shape"]) if shape is None else shape,
        dtype=np.dtype(header["dtype"]),
        chunks=tuple(header["chunks"]),
        fillvalue=0,
        track_times=False,
        **codec.dataset_kwargs(),
    )
    for k, v in attrs.items():
        ds.attrs[k] = v
    ds.attrs[RUN_ATTR] = json.dumps(header, sort_keys=True)
    ds.attrs[COMPLETE_ATTR] = False
    return ds


def final_header(path: Path, dataset: str) -> dict | None:
    """The run header of a complete output, or None (missing, partial or unreadable)."""
    try:
        with h5py.File(path, "r") as f:
            ds = f[dataset]
            if not bool(ds.attrs.get(COMPLETE_ATTR, False)):
                return None
            return json.loads(ds.attrs[RUN_ATTR])
    except (OSError, KeyError, ValueError):
        return None
