"""napari reader (npe2, manifest ``napari.yaml``): a lazystitch HDF5 or BigDataViewer output
opens as one lazy multiscale image layer (one per channel), and its tile map, when the run
wrote one (``--tile-map``), as a lazy multiscale labels layer above it.

Each level is a dask array whose blocks open the file inside their task and read only their
region: building the layer reads attributes, never pixels. The scale is the recorded pixel
size (µm; 1 when unknown), the contrast limits those the writer recorded from the finished
mosaic, the layer names the channel names. OME-Zarr outputs open with napari-ome-zarr, and
pyramidal OME-TIFFs with napari's own TIFF reader (or napari-ome-zarr's sibling plugins).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["get_reader", "read_layers"]

LayerData = tuple[Any, dict[str, Any], str]


def _hdf5_of(path: str) -> Path | None:
    """The HDF5 file of a lazystitch output named by ``path`` (``.h5``, or BDV's ``.xml``)."""
    p = Path(path)
    if p.suffix.lower() == ".xml":
        p = p.with_suffix(".h5")
    if p.suffix.lower() not in (".h5", ".hdf5") or not p.is_file():
        return None
    return p


def get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """npe2 reader hook: :func:`read_layers` for a complete lazystitch HDF5/BDV output, else
    None (napari then asks the next reader)."""
    import h5py

    from lazystitch.writers._files import run_dataset

    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    h5 = _hdf5_of(str(path))
    if h5 is None or not h5py.is_hdf5(h5):
        return None
    try:
        with h5py.File(h5, "r") as f:
            ds = run_dataset(f)
            if ds is None or not bool(ds.attrs.get("lazystitch_complete", False)):
                return None
    except OSError:
        return None
    return read_layers


def _read_block(
    path: str,
    names: tuple[str, ...],
    pad: int,
    view: str | None,
    block_info: dict | None = None,
) -> np.ndarray:
    """One block of a level: its region of each plane's dataset, read in this task."""
    import h5py
    import hdf5plugin  # noqa: F401  (blosc / zstd chunks)

    assert block_info is not None
    loc = block_info[None]["array-location"]
    split = len(names) > 1
    region = tuple(slice(a, b) for a, b in (loc[1:] if split else loc))
    lead = (0,) * pad
    with h5py.File(path, "r") as f:
        if split:
            planes = [f[names[c]][lead + region] for c in range(*loc[0])]
            out = np.stack(planes)
        else:
            out = f[names[0]][lead + region]
    return out.view(view) if view else out


def _level(h5: Path, spec: Any, dtype: np.dtype) -> Any:
    """Level ``spec`` (an ``ArraySpec`` of the run header) as a lazy dask array."""
    import dask.array as da
    from dask.base import tokenize

    names = tuple(spec.dataset_name(c) for c in range(spec.planes))
    stored = np.dtype(spec.dtype)
    view = str(dtype) if stored != dtype else None  # BDV's uint16 kept as int16 bits
    chunks = da.core.normalize_chunks(spec.chunks, spec.shape)
    return da.map_blocks(
        _read_block,
        str(h5),
        names,
        spec.pad,
        view,
        chunks=chunks,
        dtype=dtype,
        meta=np.empty((0,) * len(spec.shape), dtype=dtype),
        name=f"lazystitch-level-{tokenize(str(h5), names, h5.stat().st_mtime_ns)}",
    )


def read_layers(path: str | list[str]) -> list[LayerData]:
    """The output as napari layer data: ``[(levels, metadata, "image")]``."""
    import h5py

    from lazystitch.writers._files import CONTRAST_ATTR, RUN_ATTR, header_arrays, run_dataset
    from lazystitch.writers._plan import TILE_MAP, image_arrays, tile_map_arrays

    if isinstance(path, list):
        (path,) = path
    h5 = _hdf5_of(str(path))
    assert h5 is not None
    with h5py.File(h5, "r") as f:
        ds = run_dataset(f)
        assert ds is not None  # get_reader checked it
        run = json.loads(ds.attrs[RUN_ATTR])
        contrast = ds.attrs.get(CONTRAST_ATTR)
        channels = (
            [str(c) for c in np.atleast_1d(ds.attrs["channels"])]
            if "channels" in ds.attrs
            else None
        )
        dtype = np.dtype(run["dtype"])
        keys = f[TILE_MAP].attrs["lazystitch_tile_keys"].tolist() if TILE_MAP in f else []
        if run.get("layout") == "bdv":
            channels = channels or _bdv_channel_names(h5.with_suffix(".xml"))
            if dtype == np.int16 and "dataType" not in f["s00"].attrs:
                dtype = np.dtype(np.uint16)  # BigDataViewer's uint16, kept as int16 bits
    arrays = header_arrays(run)
    images = image_arrays(arrays)
    levels = [_level(h5, a, dtype) for a in images]
    px = float(run.get("pixel_size") or 1.0)
    ndim = len(images[0].shape)
    lead = ndim - 2 - (1 if channels else 0)
    meta: dict[str, Any] = {
        "multiscale": True,
        "scale": (1.0,) * lead + (px, px),
        "metadata": {"lazystitch": run, "pixel_size_um": run.get("pixel_size")},
    }
    name = Path(str(path)).name
    if channels:
        meta["channel_axis"] = 0
        meta["name"] = channels
        if contrast is not None:
            meta["contrast_limits"] = [list(map(float, w)) for w in contrast]
    else:
        meta["name"] = name
        if contrast is not None:
            meta["contrast_limits"] = [float(v) for v in contrast[0]]
    layers: list[LayerData] = [(levels, meta, "image")]
    tile_map = tile_map_arrays(arrays)
    if tile_map:
        layers.append(_tile_map_layer(h5, tile_map, px, name, keys))
    return layers


def _tile_map_layer(
    h5: Path, arrays: list[Any], px: float, name: str, keys: list[list[int]]
) -> LayerData:
    """The tile map as a 2-D multiscale labels layer (napari shows it over every z, t and
    channel; its stored leading axes are all 1), each label's (row, col) in ``features``."""
    levels = [_level(h5, a, np.dtype(a.dtype)) for a in arrays]
    levels = [lv[(0,) * (lv.ndim - 2)] for lv in levels]
    meta = {
        "name": f"{name} tile map",
        "multiscale": True,
        "scale": (px, px),
        "opacity": 0.35,
        "features": {
            "label": list(range(len(keys) + 1)),
            "tile": ["none"] + [f"({r}, {c})" for r, c in keys],
        },
        "metadata": {"lazystitch_tile_keys": keys},
    }
    return (levels, meta, "labels")


def _bdv_channel_names(xml: Path) -> list[str] | None:
    """The ViewSetups' names of a BigDataViewer XML, when it has more than one."""
    from xml.etree import ElementTree as ET

    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError):
        return None
    names = [s.findtext("name") or s.findtext("id") or "" for s in root.iter("ViewSetup")]
    return names if len(names) > 1 else None
