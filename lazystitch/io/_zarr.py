"""Tiles held in Zarr: arrays of a group (``DIR.zarr/tile_{row}_{col}``), or one OME-Zarr
image per tile (``tiles/tile_{row}_{col}.ome.zarr``).

Read with zarr-python (v2 and v3 stores; the optional extra ``lazystitch[zarr]``), imported
only for Zarr tiles. The header check reads array metadata only; a task opens the array
read-only and reads its Y, X window (Zarr reads the chunks it touches). An OME-Zarr tile is
its multiscale image's full-resolution level, named by its ``axes``; its ``scale`` gives the
pixel size and its ``translation`` the stage position, in the axes' units (OME-NGFF 0.4's
``multiscales`` attribute, or 0.5's ``ome.multiscales``).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lazystitch._typing import Shape
from lazystitch.errors import TileError, TileNotFoundError
from lazystitch.io._source import DEFAULT_AXES, TileSource, Window, check_axes
from lazystitch.io._tiff import reading

__all__ = ["ZarrReader", "split_zarr", "zarr_source"]

_STORE = re.compile(r"^(?P<store>.*?\.zarr)(?:/(?P<inner>.*))?$", re.I)

NGFF_UM = {
    "angstrom": 1e-4, "picometer": 1e-6, "nanometer": 1e-3, "micrometer": 1.0,
    "millimeter": 1e3, "centimeter": 1e4, "decimeter": 1e5, "meter": 1e6,
}  # fmt: skip
"""Micrometres per OME-NGFF space unit (UDUNITS-2 names) that microscopes use."""


def split_zarr(location: str | os.PathLike) -> tuple[Path, str] | None:
    """``(store, array path inside it)`` if ``location`` lies in a ``*.zarr`` store.

    Examples
    --------
    >>> split_zarr("runs/tiles.zarr/scan1/tile_0_1")
    (PosixPath('runs/tiles.zarr'), 'scan1/tile_0_1')
    >>> split_zarr("tiles/t_0_1.ome.zarr")
    (PosixPath('tiles/t_0_1.ome.zarr'), '')
    >>> split_zarr("tiles/t_0_1.tif") is None
    True
    """
    m = _STORE.match(os.fspath(location).rstrip("/"))
    if m is None:
        return None
    return Path(m["store"]), (m["inner"] or "").strip("/")


def _zarr() -> Any:
    try:
        import zarr
    except ImportError:
        raise TileError("Zarr tiles need zarr-python: pip install 'lazystitch[zarr]'") from None
    return zarr


@functools.lru_cache(maxsize=64)
def _open(store: str, path: str, stamp: int) -> Any:
    return _zarr().open_array(store, path=path or None, mode="r")


@dataclass(frozen=True)
class ZarrReader:
    """Reads windows of one Zarr array, opening it read-only inside the task."""

    store: str
    path: str
    shape: Shape
    dtype: np.dtype

    def read(self, window: Window, view: bool = False) -> tuple[np.ndarray, int]:
        where = f"{self.store}/{self.path}".rstrip("/")
        with reading(where, "tile"):
            arr = _open(self.store, self.path, os.stat(self.store).st_mtime_ns)
            if tuple(arr.shape) != tuple(self.shape) or np.dtype(arr.dtype) != self.dtype:
                raise TileError(
                    f"tile {where} changed after it was checked: expected "
                    f"{tuple(self.shape)} {self.dtype}, found {arr.shape} {arr.dtype}"
                )
            index = (Ellipsis, *window)
            pixels = np.asarray(arr[index])
        return pixels, int(pixels.nbytes)


def zarr_source(store: str | os.PathLike, path: str = "") -> TileSource:
    """The :class:`~lazystitch.io.TileSource` of an array in a Zarr store, or of an
    OME-Zarr image's full-resolution level (metadata only).

    Raises
    ------
    TileNotFoundError
        If the store or the array does not exist.
    TileError
        If it is a group that is no OME-Zarr image, or not a numeric array of at least Y, X.
    """
    zarr = _zarr()
    root = Path(store)
    where = f"{root}/{path}".rstrip("/")
    if not root.exists():
        raise TileNotFoundError(f"tile store {root} does not exist (tile {where})")
    try:
        node = zarr.open(str(root), path=path or None, mode="r")
    except (FileNotFoundError, KeyError):
        raise TileNotFoundError(f"tile {where}: {root} has no array {path!r}") from None
    except Exception as exc:
        raise TileError(f"tile {where} is not a readable Zarr array: {exc}") from None
    meta: dict[str, Any] = {}
    if isinstance(node, zarr.Group):
        multiscales = _multiscales(node.attrs)
        if not multiscales:
            there = sorted(node.array_keys())[:5]
            hint = f" (it holds arrays {', '.join(there)}...)" if there else ""
            raise TileError(f"tile {where} is a Zarr group, not an array or an OME-Zarr{hint}")
        image, attrs = multiscales[0], dict(node.attrs)
        level = image["datasets"][0]["path"]
        path = f"{path}/{level}".strip("/")
        node = zarr.open_array(str(root), path=path, mode="r")
        meta = _ngff_meta(image, attrs.get("ome", attrs).get("omero"), len(node.shape))
    shape = tuple(int(s) for s in node.shape)
    dtype = np.dtype(node.dtype)
    if len(shape) < 2 or dtype.kind not in "uifb":
        raise TileError(
            f"tile {where} holds {shape} {dtype}; a tile is a numeric array of at least Y, X"
        )
    axes = meta.pop("axes", None) or DEFAULT_AXES.get(len(shape), "")
    axes = check_axes(axes, len(shape), f"tile {where}")
    stamp = _stamp(root / path)
    return TileSource(
        name=where,
        shape=shape,
        dtype=dtype,
        axes=axes,
        reader=ZarrReader(str(root), path, shape, dtype),
        identity=f"{stamp}:{path}",
        path=root,
        **meta,
    )


def _stamp(folder: Path) -> str:
    """What changes when the array is rewritten: its metadata files' size and time (chunks
    are not listed: an array may have millions)."""
    for name in ("zarr.json", ".zarray"):
        meta = folder / name
        if meta.is_file():
            st = meta.stat()
            return f"{st.st_size}:{st.st_mtime_ns}"
    return "?"


def _multiscales(attrs: Any) -> list[dict[str, Any]]:
    ome = attrs.get("ome")
    if isinstance(ome, dict) and ome.get("multiscales"):
        return list(ome["multiscales"])  # OME-NGFF 0.5
    return list(attrs.get("multiscales") or [])  # 0.4


def _ngff_meta(image: dict[str, Any], omero: Any, ndim: int) -> dict[str, Any]:
    """Axes, pixel size, position (µm; only where a translation is given) and channel names
    of a multiscale image's first level."""
    axes_meta = image.get("axes") or []
    names = [a.get("name", "") if isinstance(a, dict) else str(a) for a in axes_meta]
    units = [a.get("unit") if isinstance(a, dict) else None for a in axes_meta]
    if len(names) != ndim:
        return {}
    scale, shift, placed = np.ones(ndim), np.zeros(ndim), False
    for transforms in (image["datasets"][0].get("coordinateTransformations", []),
                       image.get("coordinateTransformations", [])):  # fmt: skip
        for t in transforms:
            if t.get("type") == "scale":
                factor = np.asarray(t["scale"], dtype=np.float64)
                scale, shift = scale * factor, shift * factor
            elif t.get("type") == "translation":
                shift, placed = shift + np.asarray(t["translation"], dtype=np.float64), True
    axes = "".join(names).lower()
    spatial = [i for i, n in enumerate(axes) if n in "zyx"]
    factors = [NGFF_UM.get(units[i] or "") for i in spatial]
    size = tuple(
        None if f is None else float(scale[i] * f) for i, f in zip(spatial, factors, strict=True)
    )
    position = None
    if placed and all(f is not None for f in factors):
        position = tuple(
            float(shift[i] * (f or 0.0)) for i, f in zip(spatial, factors, strict=True)
        )
    channels = None
    if isinstance(omero, dict) and "c" in axes:
        labels = [c.get("label") for c in omero.get("channels", []) if isinstance(c, dict)]
        if labels and all(isinstance(x, str) for x in labels):
            channels = tuple(labels)
    return {"axes": axes, "pixel_size": size, "position": position, "channels": channels}
