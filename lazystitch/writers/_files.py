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
from lazystitch.writers._plan import ArraySpec, image_arrays

__all__ = [
    "COMPLETE_ATTR",
    "CONTRAST_ATTR",
    "LIBVER",
    "RUN_ATTR",
    "VIRTUAL_LIBVER",
    "OutputPaths",
    "check_same_settings",
    "create_array",
    "differences",
    "durable_replace",
    "final_header",
    "fsync_path",
    "header_arrays",
    "mark_complete",
    "missing_sources",
    "remove",
    "run_dataset",
]

COMPLETE_ATTR = "lazystitch_complete"
CONTRAST_ATTR = "lazystitch_contrast"  # per channel (low, high): the viewers' contrast limits
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

    @property
    def levels(self) -> Path:
        """The pyramid an OME-TIFF output is converted from (``_format_ometiff``)."""
        return self._beside(".partial.levels.h5")

    def _run_files(self) -> list[Path]:
        found = [self.partial, self.journal, self.prev, self.prev_journal, self.shards]
        if not self.final.exists():
            found.append(self.virtual_shards)  # a virtual run that died while finishing
        return [p for p in found if p.exists()]

    def leftovers(self) -> list[Path]:
        """What an interrupted run left (the final output's own shard folder is not one; an
        OME-TIFF's complete pyramid, not yet converted, is)."""
        levels = OutputPaths(self.levels)
        return [
            *self._run_files(),
            *levels._run_files(),
            *([self.levels] if self.levels.exists() else []),
        ]


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


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _some(items: list[str], limit: int = 3) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _input_differences(old: dict, new: dict) -> list[str]:
    """What changed among a run's inputs (see ``LazyMosaic.fingerprint``), in words."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "tiles" and isinstance(a, dict) and isinstance(b, dict):
            changed = [p for p in b if p in a and a[p] != b[p]]
            if changed:
                out.append(f"tile file {_some(changed)} changed (size or modification time)")
            added = [p for p in b if p not in a]
            if added:
                out.append(f"tile file {_some(added)} was not an input of the partial run")
            gone = [p for p in a if p not in b]
            if gone:
                out.append(f"tile file {_some(gone)} of the partial run is no longer an input")
        elif key == "blend":
            out.append(f"blend: {a!r} -> {b!r}")
        else:
            out.append(f"the {key} changed")
    return out


def differences(old: dict, new: dict) -> list[str]:
    """How two run headers differ, one phrase per setting (inputs: per tile file, ...)."""
    out: list[str] = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if k == "inputs" and isinstance(a, dict) and isinstance(b, dict):
            out += _input_differences(a, b)
        elif k == "inputs":
            out.append("the inputs changed (the partial run was made by another version)")
        else:
            out.append(f"{k}: {_short(a)} -> {_short(b)}")
    return out


def check_same_settings(what: Path, old: dict, new: dict) -> None:
    """Refuse to resume from ``what`` (a partial file or a shard) made with other settings."""
    diff = differences(old, new)
    if diff:
        raise ResumeMismatchError(
            f"cannot resume from {what}: it was made with other settings ("
            + "; ".join(diff)
            + "); pass --overwrite to start over"
        )


def create_array(
    file: h5py.File,
    spec: ArraySpec,
    codec: ChunkCodec,
    attrs: dict[str, Any],
    header: dict | None = None,
    shape: tuple[int, ...] | None = None,
    plane: int = 0,
) -> h5py.Dataset:
    """One chunked dataset of a run: plane ``plane`` of a split array; or, given ``shape``,
    a shard's dataset of the whole array.

    Level 0 (given ``header``) is marked incomplete and carries the run header that
    ``resume`` checks.
    """
    whole = shape is not None
    codec = codec.for_array(spec)
    ds = file.create_dataset(
        spec.name if whole else spec.dataset_name(plane),
        shape=shape if whole else spec.stored_shape,
        dtype=np.dtype(spec.dtype),
        chunks=spec.whole_chunks if whole else spec.stored_chunks,
        fillvalue=0,
        track_times=False,
        **codec.dataset_kwargs(),
    )
    for k, v in attrs.items():
        ds.attrs[k] = v
    if header is not None:
        ds.attrs[RUN_ATTR] = json.dumps(header, sort_keys=True)
        ds.attrs[COMPLETE_ATTR] = False
    return ds


def mark_complete(
    datasets: list[list[h5py.Dataset]], arrays: list[ArraySpec], channels: bool, dtype: str
) -> None:
    """Record the contrast windows (from the finest level small enough to read whole) and
    mark level 0 complete: the last writes into a finished HDF5 output, before its rename.
    ``datasets[k]``: level k's datasets (one, or one per plane of a split array);
    ``channels``: whether the first axis is a channel axis; ``dtype``: the mosaic's."""
    from lazystitch.writers._contrast import contrast_level, contrast_windows

    k = contrast_level([a.shape for a in image_arrays(arrays)], channels)  # mosaic first
    if arrays[k].split:
        windows = [contrast_windows(ds, False, dtype)[0] for ds in datasets[k]]
    else:
        windows = contrast_windows(datasets[k][0], channels, dtype)
    datasets[0][0].attrs[CONTRAST_ATTR] = np.array(windows, dtype=np.float64)
    datasets[0][0].attrs[COMPLETE_ATTR] = True


def run_dataset(f: h5py.File) -> h5py.Dataset | None:
    """The dataset of an HDF5 output that carries the run header (level 0), or None."""
    found: list[h5py.Dataset] = []

    def visit(name: str, obj: object) -> None:
        if not found and isinstance(obj, h5py.Dataset) and RUN_ATTR in obj.attrs:
            found.append(obj)

    f.visititems(visit)
    return found[0] if found else None


def header_arrays(header: dict) -> list[ArraySpec]:
    """The arrays a run header lists."""
    return [
        ArraySpec(
            a["name"],
            tuple(a["shape"]),
            a["dtype"],
            tuple(a["chunks"]),
            int(a["level"]),
            int(a.get("pad", 0)),
            bool(a.get("split", False)),
            int(a.get("source", 0)),
            str(a.get("reduce", "mean")),
            str(a.get("codec", "")),
        )
        for a in header["arrays"]
    ]


def missing_sources(path: Path, ds: h5py.Dataset) -> list[str]:
    """The source files of a virtual dataset that are not where it reads them from."""
    if not ds.is_virtual:
        return []
    names = sorted({vs.file_name for vs in ds.virtual_sources()})
    return [n for n in names if n != "." and not (path.parent / n).exists()]


def final_header(path: Path, dataset: str) -> dict | None:
    """The run header of a complete output, or None (missing, partial, unreadable, or a
    virtual output whose shard files are gone; a folder: an OME-Zarr output)."""
    if path.is_dir():
        from lazystitch.writers._format_omezarr import zarr_header

        return zarr_header(path)
    try:
        with h5py.File(path, "r") as f:
            ds = f[dataset]
            if not bool(ds.attrs.get(COMPLETE_ATTR, False)) or missing_sources(path, ds):
                return None
            return json.loads(ds.attrs[RUN_ATTR])
    except (OSError, KeyError, ValueError):
        return None
