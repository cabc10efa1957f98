"""What an OME-TIFF's OME-XML says about its first image: pixel size, channel names and the
stage position, in micrometres (read with ome-types, imported only for OME files)."""

from __future__ import annotations

import functools
from typing import Any

from lazystitch._typing import Shape
from lazystitch.errors import TileError

__all__ = ["UM_PER", "ome_metadata"]

UM_PER = {
    "Ym": 1e30, "Zm": 1e27, "Em": 1e24, "Pm": 1e21, "Tm": 1e18, "Gm": 1e15, "Mm": 1e12,
    "km": 1e9, "hm": 1e8, "dam": 1e7, "m": 1e6, "dm": 1e5, "cm": 1e4, "mm": 1e3, "µm": 1.0,
    "nm": 1e-3, "pm": 1e-6, "fm": 1e-9, "am": 1e-12, "zm": 1e-15, "ym": 1e-18, "Å": 1e-4,
    "thou": 25.4, "li": 2116.666666666667, "in": 25400.0, "ft": 304800.0, "yd": 914400.0,
    "mi": 1609344000.0, "ua": 1.495978707e17, "ly": 9.4607304725808e21, "pc": 3.0856776e22,
    "pt": 352.77777777777777,
}  # fmt: skip
"""Micrometres per OME ``UnitsLength``; "reference frame" and "pixel" are not physical and
are absent on purpose (OME's default position unit is "reference frame", bioformats #3790)."""


def _um(value: float | None, unit: Any) -> float | None:
    if value is None:
        return None
    factor = UM_PER.get(getattr(unit, "value", unit))
    return None if factor is None else float(value) * factor


@functools.lru_cache(maxsize=4)
def _parsed(xml: str) -> Any:
    """The OME model of an OME-XML, parsed once: a multi-series file gives every series the
    same XML (ome-types takes ~6 ms a parse; N series would parse it N times)."""
    from ome_types import from_xml

    return from_xml(xml)


def ome_metadata(xml: str, axes: str, shape: Shape, where: str, image: int = 0) -> dict[str, Any]:
    """``pixel_size``, ``position`` and ``channels`` for :class:`~lazystitch.io.TileSource`
    from the OME-XML of a tile file, of its ``image``-th Image (a multi-series file's series
    in order; each left out when the XML does not give it in physical units). The position is
    the first plane's (``Plane`` PositionX/Y/Z), else the image's ``StageLabel``."""
    try:
        ome = _parsed(xml)
    except Exception as exc:
        raise TileError(f"tile file {where} has OME-XML that cannot be parsed: {exc}") from None
    if len(ome.images) <= image:
        return {}
    img = ome.images[image]
    px = img.pixels
    spatial = [a for a in axes if a in "zyx"]
    size = {
        "x": _um(px.physical_size_x, px.physical_size_x_unit),
        "y": _um(px.physical_size_y, px.physical_size_y_unit),
        "z": _um(px.physical_size_z, px.physical_size_z_unit),
    }
    out: dict[str, Any] = {}
    if any(size[a] is not None for a in spatial):
        out["pixel_size"] = tuple(size[a] for a in spatial)
    pos: dict[str, float | None] = {}
    if px.planes:
        p = px.planes[0]
        pos = {
            "x": _um(p.position_x, p.position_x_unit),
            "y": _um(p.position_y, p.position_y_unit),
            "z": _um(p.position_z, p.position_z_unit),
        }
    if (pos.get("x") is None or pos.get("y") is None) and img.stage_label is not None:
        sl = img.stage_label
        pos = {"x": _um(sl.x, sl.x_unit), "y": _um(sl.y, sl.y_unit), "z": _um(sl.z, sl.z_unit)}
    if pos.get("x") is not None and pos.get("y") is not None:
        if "z" in spatial:
            pos["z"] = 0.0 if pos.get("z") is None else pos["z"]
        out["position"] = tuple(pos[a] for a in spatial)
    if "c" in axes:
        names = [c.name for c in px.channels]
        n = shape[axes.index("c")]
        if len(names) == n and all(names) and len(set(names)) == n:
            out["channels"] = tuple(str(c) for c in names)
    return out
