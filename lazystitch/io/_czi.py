"""Zeiss CZI tile scans (``--tiles scan.czi``; the optional extra ``lazystitch[czi]``, read
with czifile, imported only for CZI files).

A CZI holds every tile as subblocks: one per tile (its scene ``S`` and mosaic index ``M``)
and plane (``T``, ``C``, ``Z``). Each tile becomes a :class:`TileSource` whose reader opens the
file in the task and decodes only that tile's subblocks. Its stage position is the subblocks'
``StageXPosition``/``StageYPosition`` (µm), else their pixel start in the mosaic times the
pixel size; the pixel size is the file's ``Scaling`` (metres per pixel); channel names come
from ``Information/Image/Dimensions/Channels``.
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lazystitch._typing import Shape
from lazystitch.errors import TileError
from lazystitch.io._source import TileSource, Window, split_numbered, stat_tile
from lazystitch.io._tiff import reading

__all__ = ["CziReader", "czi_locations", "czi_source", "split_czi"]


def split_czi(location: str | os.PathLike) -> tuple[Path, int] | None:
    """``(file, tile)`` for ``FILE.czi:N`` (the N-th tile of a CZI).

    Examples
    --------
    >>> split_czi("scan.czi:1")
    (PosixPath('scan.czi'), 1)
    >>> split_czi("scan.czi") is None, split_czi("t.tif:1") is None
    (True, True)
    """
    return split_numbered(location, (".czi",))


def _czifile() -> Any:
    try:
        import czifile
    except ImportError:
        raise TileError("CZI tiles need czifile: pip install 'lazystitch[czi]'") from None
    return czifile


@dataclass(frozen=True)
class _Tile:
    entries: tuple[int, ...]  # indices into the subblock directory, in plane order
    lead: Shape  # (T, C, Z) sizes present with more than one plane
    yx: tuple[int, int]
    start_yx: tuple[int, int]


@functools.lru_cache(maxsize=16)
def _scan(path: str, mtime_ns: int) -> tuple[list[_Tile], np.dtype, dict[str, Any]]:
    """The file's tiles (subblocks grouped by scene and mosaic index), dtype and metadata."""
    czifile = _czifile()
    try:
        czi = czifile.CziFile(path)
    except Exception as exc:
        raise TileError(f"tile file {path} is not a readable CZI: {exc}") from None
    with czi:
        groups: dict[tuple[int, int], list[tuple[dict[str, int], int]]] = defaultdict(list)
        sizes: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        directory = czi.filtered_subblock_directory
        for i, entry in enumerate(directory):
            dims = {d.dimension: d for d in entry.dimension_entries}
            if dims["X"].size != dims["X"].stored_size:  # a pyramid level, not the data
                continue
            key = (dims["S"].start if "S" in dims else 0, dims["M"].start if "M" in dims else i)
            groups[key].append(({a: dims[a].start for a in "TCZ" if a in dims}, i))
            sizes[key] = (dims["Y"].size, dims["X"].size, dims["Y"].start, dims["X"].start)
        dtype = np.dtype(czi.dtype)
        meta = _metadata(czi.metadata())
        stage = {}
        for key, planes in groups.items():
            tags = directory[planes[0][1]].data_segment().metadata() or {}
            tags = tags.get("Tags", {}) if isinstance(tags, dict) else {}
            if "StageXPosition" in tags and "StageYPosition" in tags:
                stage[key] = (float(tags["StageYPosition"]), float(tags["StageXPosition"]))
    tiles = []
    for key in sorted(groups):
        planes = sorted(groups[key], key=lambda p: tuple(p[0].get(a, 0) for a in "TCZ"))
        lead = tuple(n for a in "TCZ" if (n := len({p[0].get(a, 0) for p in planes})) > 1)
        h, w, y0, x0 = sizes[key]
        tiles.append(_Tile(tuple(i for _, i in planes), lead, (h, w), (y0, x0)))
    meta["stage"] = [stage.get(k) for k in sorted(groups)]
    meta["lead_axes"] = "".join(
        a.lower() for a in "TCZ" if len({p[0].get(a, 0) for g in groups.values() for p in g}) > 1
    )
    return tiles, dtype, meta


def _metadata(xml: str) -> dict[str, Any]:
    root = ET.fromstring(xml)
    size: dict[str, float] = {}
    for d in root.iter("Distance"):
        axis, value = d.attrib.get("Id"), d.findtext("Value")
        if axis in ("X", "Y", "Z") and value is not None:
            size[axis.lower()] = float(value) * 1e6  # metres per pixel
    names = [
        c.attrib.get("Name") or c.attrib.get("Id", "")
        for c in root.findall(".//Information/Image/Dimensions/Channels/Channel")
    ]
    return {"size_um": size, "channels": names}


def _scanned(p: Path) -> tuple[os.stat_result, list[_Tile], np.dtype, dict[str, Any]]:
    st = stat_tile(p)
    return (st, *_scan(str(p), st.st_mtime_ns))


def czi_locations(path: str | os.PathLike) -> list[str]:
    """``FILE.czi:N`` for each tile of a CZI, in scene and mosaic order."""
    p = Path(path)
    return [f"{p}:{i}" for i in range(len(_scanned(p)[1]))]


@dataclass(frozen=True)
class CziReader:
    """Reads windows of one tile of a CZI, decoding its subblocks inside the task."""

    path: str
    entries: tuple[int, ...]
    shape: Shape
    dtype: np.dtype

    def read(self, window: Window, view: bool = False) -> tuple[np.ndarray, int]:
        czifile = _czifile()
        out = np.empty((len(self.entries), *self.shape[-2:]), self.dtype)
        with reading(self.path), czifile.CziFile(self.path) as czi:
            directory = czi.filtered_subblock_directory
            for k, i in enumerate(self.entries):
                plane = directory[i].data_segment().data()
                out[k] = np.asarray(plane).reshape(self.shape[-2:])
        index = (Ellipsis, *window)
        pixels = np.ascontiguousarray(out.reshape(self.shape)[index])
        return pixels, int(out.nbytes)


def czi_source(path: str | os.PathLike, tile: int) -> TileSource:
    """The :class:`~lazystitch.io.TileSource` of tile ``tile`` of a CZI (metadata only)."""
    p = Path(path)
    st, tiles, dtype, meta = _scanned(p)
    if not 0 <= tile < len(tiles):
        raise TileError(f"tile file {p} holds {len(tiles)} tiles; there is no tile {tile}")
    t = tiles[tile]
    axes = meta["lead_axes"] + "yx"
    shape = (*t.lead, *t.yx)
    if len(shape) != len(axes):  # planes missing for some tile
        raise TileError(f"tile {p}:{tile} has planes {t.lead}, unlike the file's {axes!r}")
    size_um = meta["size_um"]
    spatial = [a for a in axes if a in "zyx"]
    pixel_size = tuple(size_um.get(a) for a in spatial) if size_um else None
    position = meta["stage"][tile]
    if position is None and "x" in size_um and "y" in size_um:
        position = (t.start_yx[0] * size_um["y"], t.start_yx[1] * size_um["x"])
    if position is not None and "z" in spatial:
        position = (0.0, *position)
    names = meta["channels"]
    channels = tuple(names) if "c" in axes and len(names) == shape[axes.index("c")] else None
    return TileSource(
        name=f"{p}:{tile}",
        shape=shape,
        dtype=dtype,
        axes=axes,
        reader=CziReader(str(p), t.entries, shape, dtype),
        identity=f"{st.st_size}:{st.st_mtime_ns}:{tile}",
        path=p,
        pixel_size=pixel_size,
        position=position,
        channels=channels,
    )
