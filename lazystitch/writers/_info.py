"""Describe an output file (complete or partial) without reading its pixels."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lazystitch.errors import OutputTargetError
from lazystitch.writers._files import (
    COMPLETE_ATTR,
    RUN_ATTR,
    OutputPaths,
    header_arrays,
    missing_sources,
    run_dataset,
)
from lazystitch.writers._format_omezarr import is_zarr_output
from lazystitch.writers._journal import read_journal
from lazystitch.writers._plan import (
    TILE_MAP,
    ArraySpec,
    chunk_counts,
    image_arrays,
    tile_map_arrays,
)
from lazystitch.writers._shards import RECORDS_ATTR

__all__ = ["describe_output"]


def _open_hdf5(path: Path) -> h5py.File:
    """Open an output for reading, or say in one line why it is not one."""
    if path.is_dir():
        raise OutputTargetError(f"{path} is a folder, not an HDF5 output file")
    if not h5py.is_hdf5(path):
        raise OutputTargetError(f"{path} is not an HDF5 file (a lazystitch output is one)")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise OutputTargetError(f"{path} cannot be opened as HDF5: {exc}") from None


def _find_dataset(f: h5py.File, path: Path, dataset: str | None) -> h5py.Dataset:
    names: list[str] = []
    f.visititems(lambda n, v: names.append(n) if isinstance(v, h5py.Dataset) else None)
    if dataset is not None:
        if dataset.strip("/") not in names:
            raise OutputTargetError(
                f"{path} has no dataset {dataset!r} (datasets: {', '.join(names) or 'none'})"
            )
        return f[dataset]
    ours = run_dataset(f)
    if ours is None:
        raise OutputTargetError(
            f"{path} is not a lazystitch output: no dataset carries {RUN_ATTR} "
            f"(datasets: {', '.join(names) or 'none'})"
        )
    return ours


def _dataset_info(path: Path, dataset: str | None) -> dict[str, Any]:
    with _open_hdf5(path) as f:
        ds = _find_dataset(f, path, dataset)
        dataset = ds.name.lstrip("/")
        attrs = ds.attrs
        info: dict[str, Any] = {
            "dataset": dataset,
            "shape": list(ds.shape),
            "dtype": str(ds.dtype),
            "chunks": list(ds.chunks) if ds.chunks else None,
            "compression": _compression(ds),
            "complete": bool(attrs.get(COMPLETE_ATTR, False)),
            "storage": "chunked" if ds.chunks else "contiguous",
        }
        if ds.is_virtual:  # write mode virtual: chunks and compression are the shards'
            sources = {vs.file_name for vs in ds.virtual_sources()}
            missing = missing_sources(path, ds)
            if missing:
                raise OutputTargetError(
                    f"{path} is a virtual output but {len(missing)} of its {len(sources)} "
                    f"shard files are missing (e.g. {missing[0]}): copy the folder "
                    f"{Path(missing[0]).parent} beside it"
                )
            folders = sorted({str(Path(n).parent) for n in sources})
            info["storage"] = f"virtual: {len(sources)} shard files in {', '.join(folders)}"
            if RUN_ATTR in attrs:
                run = json.loads(attrs[RUN_ATTR])
                info["chunks"], info["compression"] = run["chunks"], run["compression"]
        if "tile_positions" in attrs:
            info["tiles"] = int(np.asarray(attrs["tile_positions"]).shape[0])
        for key in ("blend", "lazystitch_version"):
            if key in attrs:
                info[key] = str(attrs[key])
        if "layout" in attrs:
            info["layout"] = json.loads(attrs["layout"])
        if RUN_ATTR in attrs:
            run = json.loads(attrs[RUN_ATTR])
            info["format"] = run.get("layout", "hdf5")
            arrays = header_arrays(run) if "arrays" in run else []
            info["levels"] = [
                {"name": _stored_names(a), "shape": list(a.shape), "chunks": list(a.chunks)}
                for a in image_arrays(arrays)
            ]  # fmt: skip
            _tile_map_info(arrays, info)
            info["pixel_size_um"] = run.get("pixel_size")
        if "channels" in attrs:
            info["channels"] = [str(c) for c in np.atleast_1d(attrs["channels"])]
    return info


def _tile_map_info(arrays: list[ArraySpec], info: dict[str, Any]) -> None:
    """The tile map's levels (``--tile-map``), if the run writes one."""
    tile_map = tile_map_arrays(arrays)
    if tile_map:
        info["tile_map"] = " ".join(
            f"{'x'.join(map(str, a.shape[-2:]))} ({a.name}, {a.dtype})" for a in tile_map
        )


def _journal_progress(journal: Path, info: dict[str, Any]) -> None:
    """Chunks durably written so far by a partial run, from its journal."""
    try:
        header, records = read_journal(journal)
    except (ValueError, OSError):
        return
    info["chunks_written"], info["chunks_total"] = len(records), _total(header)


def _zarr_info(path: Path, paths: OutputPaths) -> dict[str, Any]:
    """An OME-Zarr output (or its partial folder): levels, chunks, pixel size, channels."""
    src = path if path.exists() else paths.partial
    if not src.exists():
        raise FileNotFoundError(f"{path} does not exist (and no partial run {paths.partial})")
    try:
        import zarr
    except ImportError:
        raise OutputTargetError(
            f"{src} is a Zarr folder; reading it needs zarr-python 3: pip install "
            "'lazystitch[zarr]'"
        ) from None
    try:
        group = zarr.open_group(src, mode="r")
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise OutputTargetError(f"{src} is not a Zarr group: {exc}") from None
    attrs: dict[str, Any] = dict(group.attrs.asdict())
    ours = attrs.get("lazystitch")
    if not isinstance(ours, dict) or "run" not in ours:
        raise OutputTargetError(f"{src} is not a lazystitch output (no 'lazystitch' attribute)")
    run = ours["run"]
    ome: dict[str, Any] = attrs.get("ome", attrs)
    version = ome.get("version") or ome["multiscales"][0].get("version")
    levels = []
    arrays = header_arrays(run)
    for a in image_arrays(arrays):
        arr: Any = group[a.name]
        entry = {"name": a.name, "shape": list(arr.shape), "chunks": list(arr.chunks)}
        if getattr(arr, "shards", None):
            entry["shards"] = list(arr.shards)
        levels.append(entry)
    info: dict[str, Any] = {
        "path": str(src),
        "state": "complete" if src == path and ours.get("complete") else "partial",
        "format": f"ome-zarr {version} (Zarr v{group.metadata.zarr_format})",
        "shape": run["shape"],
        "dtype": run["dtype"],
        "chunks": levels[0]["chunks"],
        "compression": run["compression"],
        "levels": levels,
        "pixel_size_um": run.get("pixel_size"),
        "channels": [c.get("label") for c in ome.get("omero", {}).get("channels", [])],
    }
    _tile_map_info(arrays, info)
    if info["state"] == "partial":
        _journal_progress(paths.journal, info)
        info["hint"] = "continue it with --resume, or start over with --overwrite"
    return info


def _tiff_info(path: Path) -> dict[str, Any]:
    """A pyramidal OME-TIFF output: its levels, tiles, compression and OME pixel metadata."""
    import ome_types
    import tifffile

    from lazystitch.writers._format_ometiff import tiff_header

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            first = tif.pages.first
            ome = ome_types.from_xml(tif.ome_metadata) if tif.is_ome else None
            tile = [first.tilelength, first.tilewidth] if first.is_tiled else None
            levels = [
                {"name": str(k), "shape": list(lv.shape), "chunks": tile}
                for k, lv in enumerate(series.levels)
            ]
            info: dict[str, Any] = {
                "path": str(path),
                "state": "complete" if tiff_header(path) is not None else "not a lazystitch output",
                "format": "ome-tiff" if ome is not None else "tiff",
                "shape": list(series.shape),
                "dtype": str(series.dtype),
                "axes": series.axes,
                "chunks": tile,
                "compression": first.compression.name.lower(),
                "levels": levels,
            }
            maps = [s for s in tif.series[1:] if s.name == TILE_MAP]
            if maps:
                info["tile_map"] = " ".join(
                    f"{'x'.join(map(str, lv.shape[-2:]))} ({TILE_MAP} level {k})"
                    for k, lv in enumerate(maps[0].levels)
                )
    except (OSError, tifffile.TiffFileError) as exc:
        raise OutputTargetError(f"{path} cannot be read as TIFF: {exc}") from None
    if ome is not None:
        pixels = ome.images[0].pixels
        info["pixel_size_um"] = pixels.physical_size_x
        if any(c.name for c in pixels.channels):
            info["channels"] = [c.name for c in pixels.channels]
    return info


def _total(header: dict) -> int:
    """Units of a run: every chunk of every level."""
    if "arrays" in header:
        return sum(a.n_chunks for a in header_arrays(header))
    return math.prod(chunk_counts(header["shape"], header["chunks"]))


def _compression(ds: h5py.Dataset) -> str:
    if ds.compression in (None, "unknown"):
        plist = ds.id.get_create_plist()
        codes = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        names = {32001: "blosc", 32015: "zstd"}
        return "+".join(names.get(c, str(c)) for c in codes) or "none"
    if ds.compression == "gzip":
        return f"gzip:{ds.compression_opts}"
    return str(ds.compression)


def describe_output(path: str | os.PathLike, dataset: str | None = None) -> dict[str, Any]:
    """Shape, dtype, chunks, compression, tiles and state of an output file.

    ``path`` may be the final file or a run in progress (``PATH.partial``); for a partial run the
    number of chunks durably written so far is reported from its journal.

    Returns
    -------
    dict
        With ``state`` in {"complete", "partial", "incomplete"}.

    Raises
    ------
    FileNotFoundError
        If neither the file nor a partial run exists.
    """
    import hdf5plugin  # noqa: F401  (lets h5py read blosc/zstd filter metadata)

    path = Path(path)
    if path.suffix.lower() == ".xml":  # a BigDataViewer output: its HDF5 file
        path = path.with_suffix(".h5")
    if path.name.endswith(".partial"):
        path = path.with_name(path.name[: -len(".partial")])
    paths = OutputPaths(path)
    if path.name.lower().endswith(".zarr") or is_zarr_output(path):
        return _zarr_info(path, paths)
    if path.name.lower().endswith((".ome.tif", ".ome.tiff")):
        if path.exists():
            return _tiff_info(path)
        if paths.levels.exists() or OutputPaths(paths.levels).leftovers():
            info = describe_output(paths.levels, dataset)  # the pyramid, not yet a TIFF
            return {
                **info,
                "state": "partial",
                "format": "ome-tiff",
                "path": str(paths.levels),
                "hint": "continue it with --resume, or start over with --overwrite",
            }
    if path.exists():
        info = _dataset_info(path, dataset)
        info["state"] = "complete" if info.pop("complete") else "incomplete"
        info["path"] = str(path)
        return info
    if paths.shards.exists():
        return _shard_run_info(paths)
    src = paths.partial if paths.partial.exists() else paths.prev
    if not src.exists():
        raise FileNotFoundError(f"{path} does not exist (and no partial run {paths.partial})")
    info = {"path": str(src), "state": "partial"}
    try:
        info.update(_dataset_info(src, dataset))
        info.pop("complete", None)
    except (OSError, KeyError, ValueError) as exc:
        info["error"] = f"cannot open the partial file: {str(exc).splitlines()[0]}"
    _journal_progress(paths.journal if src == paths.partial else paths.prev_journal, info)
    info["hint"] = "continue it with --resume, or start over with --overwrite"
    return info


def _shard_run_info(paths: OutputPaths) -> dict[str, Any]:
    """A partial run of a shard write mode: its shard files written so far."""
    files = sorted(paths.shards.glob("shard_*.h5"))
    info: dict[str, Any] = {"path": str(paths.shards), "state": "partial", "shards_written": 0}
    written = 0
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                ds = _find_dataset(f, path, None)
                run = json.loads(ds.attrs[RUN_ATTR])
                written += len(ds.attrs[RECORDS_ATTR])
                info["shards_written"] += 1
        except (OSError, KeyError, ValueError, OutputTargetError):
            continue
        info["chunks_total"] = _total(run)
    info["chunks_written"] = written
    info["hint"] = "continue it with --resume, or start over with --overwrite"
    return info


def _stored_names(spec: ArraySpec) -> str:
    """Where an array is stored: its dataset, or the first and last of a split array's."""
    if spec.planes == 1:
        return spec.dataset_name(0)
    return f"{spec.dataset_name(0)} .. {spec.dataset_name(spec.planes - 1)}"
