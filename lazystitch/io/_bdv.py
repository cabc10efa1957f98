"""A BigDataViewer / BigStitcher dataset as tiles (``--tiles dataset.xml``).

The SpimData XML names the HDF5 file (``ImageLoader format="bdv.hdf5"``), the view setups
(size, voxel size, and the tile, channel, illumination and angle each belongs to) and, per
view, the transforms that place it. Each tile is the setups of one (tile, illumination,
angle), its channels stacked in channel order, at the first timepoint; it is read from
``t00000/s{setup:02d}/0/cells`` (z, y, x; a single plane becomes a y, x tile). Its position is
the translation of the view's transforms composed as BDV composes them (the first listed is
applied last), turned into the setup's pixels by the composed scale, then into µm by the voxel
size: what BigStitcher's registration found, so ``--positions metadata`` fuses a BigStitcher
project in any output format, on a cluster.

uint16 data is stored as int16 by BDV's convention: the bits are read back as uint16 unless
the setup's ``dataType`` attribute says otherwise.
"""

from __future__ import annotations

import functools
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lazystitch._typing import Shape
from lazystitch.errors import TileError, TileNotFoundError
from lazystitch.io._ome import UM_PER
from lazystitch.io._source import TileSource, Window, split_numbered, stat_tile
from lazystitch.io._tiff import reading
from lazystitch.io._zarr import NGFF_UM

__all__ = ["BdvReader", "bdv_locations", "bdv_source", "split_bdv"]

_UNIT_UM = {**NGFF_UM, **UM_PER, "um": 1.0, "micron": 1.0}
"""Micrometres per voxel-size unit: BDV's unit is free text (OME's symbols, UDUNITS names)."""


def split_bdv(location: str | os.PathLike) -> tuple[Path, int] | None:
    """``(dataset.xml, tile)`` for ``dataset.xml:N``.

    Examples
    --------
    >>> split_bdv("proj/dataset.xml:2")
    (PosixPath('proj/dataset.xml'), 2)
    """
    return split_numbered(location, (".xml",))


@dataclass(frozen=True)
class _Setup:
    id: int
    size_xyz: tuple[int, ...]
    voxel_xyz: tuple[float, ...]
    unit: str
    attrs: dict[str, int]
    affine: np.ndarray  # 3 x 4, voxel (x, y, z) -> world


@functools.lru_cache(maxsize=8)
def _parse(path: str, mtime_ns: int) -> tuple[Path, list[list[_Setup]], dict[int, str], int]:
    """(HDF5 file, tiles as lists of setups in channel order, channel names by id, the
    first timepoint)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise TileError(f"tile file {path} is not a readable BigDataViewer XML: {exc}") from None
    if root.tag != "SpimData":
        raise TileError(f"tile file {path} is no BigDataViewer dataset (no SpimData root)")
    loader = root.find("SequenceDescription/ImageLoader")
    fmt = None if loader is None else loader.get("format")
    if loader is None or fmt != "bdv.hdf5" or loader.findtext("hdf5") is None:
        raise TileError(
            f"tile file {path}: image loader {fmt!r} is not read; lazystitch reads "
            "BigDataViewer datasets saved as HDF5 (format 'bdv.hdf5')"
        )
    base = Path(path).parent
    base_el = root.find("BasePath")
    if base_el is not None and base_el.get("type", "relative") == "relative":
        base = base / (base_el.text or ".")
    h5_el = loader.find("hdf5")
    assert h5_el is not None
    h5 = Path(h5_el.text or "")
    h5 = base / h5 if h5_el.get("type", "relative") == "relative" else h5
    timepoint = _first_timepoint(root)
    transforms = {}
    for reg in root.iter("ViewRegistration"):
        if int(reg.get("timepoint", "0")) != timepoint:
            continue
        model = np.eye(4)
        for vt in reg.findall("ViewTransform"):
            values = [float(v) for v in (vt.findtext("affine") or "").split()]
            if len(values) != 12:
                raise TileError(f"tile file {path}: a ViewTransform's affine is not 12 numbers")
            model = model @ np.vstack([np.reshape(values, (3, 4)), [0, 0, 0, 1]])
        transforms[int(reg.get("setup", "0"))] = model[:3]
    setups = []
    for vs in root.iter("ViewSetup"):
        sid = int(vs.findtext("id", "0"))
        size = tuple(int(v) for v in (vs.findtext("size") or "0 0 0").split())
        voxel = tuple(float(v) for v in (vs.findtext("voxelSize/size") or "1 1 1").split())
        found = vs.find("attributes")
        attrs = {a.tag: int(a.text or 0) for a in found} if found is not None else {}
        setups.append(
            _Setup(
                sid,
                size,
                voxel,
                vs.findtext("voxelSize/unit") or "",
                attrs,
                transforms.get(sid, np.eye(4)[:3]),
            )
        )
    groups: dict[tuple[int, int, int], list[_Setup]] = {}
    for s in setups:
        key = (s.attrs.get("tile", s.id), s.attrs.get("illumination", 0), s.attrs.get("angle", 0))
        groups.setdefault(key, []).append(s)
    names = {
        int(c.findtext("id", "0")): c.findtext("name") or c.findtext("id") or "0"
        for c in root.findall("SequenceDescription/ViewSetups/Attributes[@name='channel']/Channel")
    }
    tiles = [sorted(g, key=lambda s: s.attrs.get("channel", 0)) for _, g in sorted(groups.items())]
    return h5, tiles, names, timepoint


def _first_timepoint(root: ET.Element) -> int:
    tp = root.find("SequenceDescription/Timepoints")
    if tp is None:
        return 0
    if tp.get("type") == "range":
        return int(tp.findtext("first", "0"))
    text = tp.findtext("integerpattern") or tp.findtext("list") or "0"
    return int(re.findall(r"-?[0-9]+", text)[0]) if re.findall(r"-?[0-9]+", text) else 0


def _scan(path: Path) -> tuple[Path, list[list[_Setup]], dict[int, str], int]:
    return _parse(str(path), stat_tile(path).st_mtime_ns)


def bdv_locations(path: str | os.PathLike) -> list[str]:
    """``dataset.xml:N`` for each tile of a BigDataViewer dataset."""
    tiles = _scan(Path(path))[1]
    return [f"{path}:{i}" for i in range(len(tiles))]


@dataclass(frozen=True)
class BdvReader:
    """Reads windows of one tile's setups from the dataset's HDF5, inside the task."""

    file: str
    datasets: tuple[str, ...]  # one per channel
    shape: Shape
    dtype: np.dtype
    stored: np.dtype  # int16 for BDV's uint16

    def read(self, window: Window, view: bool = False) -> tuple[np.ndarray, int]:
        import h5py

        index = (slice(None), *window)
        with reading(self.file), h5py.File(self.file, "r") as f:
            planes = [np.asarray(f[d][index]) for d in self.datasets]
        pixels = np.stack(planes).view(self.dtype)
        wy, wx = pixels.shape[-2:]
        return pixels.reshape(*self.shape[:-2], wy, wx), int(pixels.nbytes)


def bdv_source(path: str | os.PathLike, tile: int) -> TileSource:
    """The :class:`~lazystitch.io.TileSource` of tile ``tile`` of a BigDataViewer dataset."""
    import h5py

    xml = Path(path)
    h5, tiles, names, timepoint = _scan(xml)
    if not 0 <= tile < len(tiles):
        raise TileError(f"tile file {xml} holds {len(tiles)} tiles; there is no tile {tile}")
    setups = tiles[tile]
    where = f"{xml} tile {tile} (setup {setups[0].id})"
    if not h5.is_file():
        raise TileNotFoundError(f"tile {where}: its HDF5 file {h5} does not exist")
    datasets = tuple(f"t{timepoint:05d}/s{s.id:02d}/0/cells" for s in setups)
    with h5py.File(h5, "r") as f:
        found = []
        for s, d in zip(setups, datasets, strict=True):
            if d not in f:
                raise TileError(f"tile {where}: {h5} has no dataset {d}")
            declared = f[f"s{s.id:02d}"].attrs.get("dataType") if f"s{s.id:02d}" in f else None
            found.append((tuple(f[d].shape), np.dtype(f[d].dtype), declared))
    shapes = {s for s, _, _ in found}
    if len(shapes) != 1:
        raise TileError(f"tile {where}: its channels' datasets differ in shape: {sorted(shapes)}")
    (z, y, x), stored, declared = found[0][0], found[0][1], found[0][2]
    if isinstance(declared, bytes):
        declared = declared.decode()
    dtype = np.dtype(declared) if declared else np.dtype("uint16") if stored == np.int16 else stored
    lead = (len(setups),) if len(setups) > 1 else ()
    axes = ("c" if lead else "") + ("zyx" if z > 1 else "yx")
    shape = (*lead, *((z,) if z > 1 else ()), y, x)
    s0 = setups[0]
    factor = _UNIT_UM.get(s0.unit)
    spatial = "zyx" if z > 1 else "yx"
    voxel = dict(zip("xyz", s0.voxel_xyz, strict=False))
    pixel_size = tuple(voxel[a] * factor for a in spatial) if factor else None
    position = None
    a = s0.affine
    scale = dict(zip("xyz", np.diag(a[:, :3]), strict=True))
    origin = dict(zip("xyz", a[:, 3], strict=True))
    if factor and all(scale[k] != 0 for k in spatial):
        position = tuple(float(origin[k] / scale[k] * voxel[k] * factor) for k in spatial)
    channels = tuple(names.get(s.attrs.get("channel", 0), str(i)) for i, s in enumerate(setups))
    st = h5.stat()
    return TileSource(
        name=where,
        shape=shape,
        dtype=dtype,
        axes=axes,
        reader=BdvReader(str(h5), datasets, shape, dtype, stored),
        identity=f"{st.st_size}:{st.st_mtime_ns}:{xml.stat().st_mtime_ns}:{tile}",
        path=h5,
        pixel_size=pixel_size,
        position=position,
        channels=channels if lead else None,
    )
