"""The BigDataViewer format: ``OUT.xml`` (SpimData 0.2) beside ``OUT.h5`` in the layout
bigdataviewer-core's ``Hdf5ImageLoader`` reads.

``s00/resolutions`` and ``s00/subdivisions`` (levels x 3, x,y,z order), one dataset
``t00000/s00/{level}/cells`` per level, stored z,y,x (a 2-D mosaic has z = 1 and is never
downsampled in z). uint16 is stored as int16 holding the same bits and *no* ``dataType``
attribute: every BigDataViewer/BigStitcher version reads that as unsigned (the legacy
convention), whereas the ``dataType`` attribute is read only by bigdataviewer-core >= 10.4.6
(2023) and a native uint16 dataset without it breaks on values above 32767 in every version.
Other dtypes are stored natively with ``s00@dataType``. Only gzip or no compression: Fiji's
HDF5 library registers HDF5's built-in filters only.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import h5py
import numpy as np

from lazystitch.errors import ConfigError
from lazystitch.writers._codec import ChunkCodec, Compression
from lazystitch.writers._files import durable_replace
from lazystitch.writers._format import Metadata
from lazystitch.writers._format_hdf5 import TILE_MAP, level_name, pixel_size_attr
from lazystitch.writers._plan import ArraySpec

__all__ = ["BigDataViewer", "bdv_paths"]

_DATATYPES = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64",
}  # fmt: skip


def bdv_paths(out: Path) -> tuple[Path, Path]:
    """(XML, HDF5) for an output named ``m.xml`` or ``m.h5``."""
    if out.suffix.lower() == ".xml":
        return out, out.with_suffix(".h5")
    return out.with_suffix(".xml"), out


def _text(parent: ET.Element, tag: str, text: str, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    el.text = text
    return el


def _fmt(values: Any) -> str:
    return " ".join(repr(float(v)) if isinstance(v, float) else str(v) for v in values)


class BigDataViewer:
    name = "bdv"
    container = "hdf5"

    def data_path(self, out: Path) -> Path:
        return bdv_paths(out)[1]

    def companions(self, out: Path) -> list[Path]:
        return [bdv_paths(out)[0]]

    def check(
        self, shape: tuple[int, ...], dtype: np.dtype, codec: ChunkCodec, channels: int = 0
    ) -> None:
        if codec.compression not in (Compression.none, Compression.gzip):
            raise ConfigError(
                f"output.compression: the BigDataViewer format takes 'none' or 'gzip' only, "
                f"not {str(codec)!r} (Fiji's HDF5 library decodes HDF5's built-in filters only)"
            )
        if np.dtype(dtype).name not in _DATATYPES:
            raise ConfigError(
                f"the BigDataViewer format cannot store {np.dtype(dtype)} pixels; "
                f"it stores {', '.join(sorted(_DATATYPES))}"
            )
        if len(shape) - (1 if channels else 0) not in (2, 3):
            per = "channel" if channels else "mosaic"
            raise ConfigError(
                f"the BigDataViewer format stores 2-D (y, x) or 3-D (z, y, x) images (one setup "
                f"per channel), not a {per} of shape {tuple(shape[1:] if channels else shape)}"
            )

    def arrays(
        self,
        dataset: str,
        shapes: list[tuple[int, ...]],
        dtype: np.dtype,
        chunks: list[tuple[int, ...]],
        channels: int = 0,
    ) -> list[ArraySpec]:
        stored = "int16" if np.dtype(dtype) == np.uint16 else np.dtype(dtype).name
        if channels and any(c[0] != 1 for c in chunks):
            raise ConfigError(
                f"output.chunks {chunks[0]}: the BigDataViewer format stores each channel as a "
                "setup of its own, so chunks must be 1 deep along the channel axis"
            )
        name = "t00000/s{plane:02d}/%d/cells" if channels else "t00000/s00/%d/cells"
        lead = 1 if channels else 0
        return [
            ArraySpec(name % k, s, stored, c, k, pad=3 - len(s) + lead, split=bool(channels))
            for k, (s, c) in enumerate(zip(shapes, chunks, strict=True))
        ]

    def prepare(self, file: h5py.File, arrays: list[ArraySpec], meta: Metadata) -> None:
        for plane in range(arrays[0].planes):
            setup = file.require_group(f"s{plane:02d}")
            factors = [[2.0**a.level, 2.0**a.level, 1.0] for a in arrays]
            setup.create_dataset("resolutions", data=np.array(factors, dtype=np.float64))
            setup.create_dataset(
                "subdivisions",
                data=np.array([a.stored_chunks[::-1] for a in arrays], dtype=np.int32),
            )
            if meta.dtype != "uint16":  # uint16: the legacy int16 view, which every BDV reads
                setup.attrs["dataType"] = meta.dtype

    def level_attrs(self, arrays: list[ArraySpec], meta: Metadata) -> dict[str, Any]:
        return {**meta.attrs, "pixel_size_um": pixel_size_attr(meta.pixel_size)}

    def xml(self, h5_name: str, arrays: list[ArraySpec], meta: Metadata) -> bytes:
        """The SpimData XML at timepoint 0: one view setup for the mosaic, or one per channel
        (named by the channels, with their own channel attribute)."""
        z, y, x = arrays[0].stored_shape
        known = meta.pixel_size is not None
        p = float(meta.pixel_size) if known else 1.0  # type: ignore[arg-type]
        planes = arrays[0].planes
        names = list(meta.channels or []) if planes > 1 else []
        names = names if len(names) == planes else [str(c) for c in range(planes)]
        root = ET.Element("SpimData", version="0.2")
        _text(root, "BasePath", ".", type="relative")
        seq = ET.SubElement(root, "SequenceDescription")
        loader = ET.SubElement(seq, "ImageLoader", format="bdv.hdf5")
        _text(loader, "hdf5", h5_name, type="relative")
        setups = ET.SubElement(seq, "ViewSetups")
        kinds = ("illumination", "channel", "tile", "angle")
        for c in range(planes):
            vs = ET.SubElement(setups, "ViewSetup")
            _text(vs, "id", str(c))
            _text(vs, "name", names[c] if planes > 1 else "mosaic")
            _text(vs, "size", _fmt((x, y, z)))
            vox = ET.SubElement(vs, "voxelSize")
            _text(vox, "unit", "µm" if known else "pixel")
            _text(vox, "size", _fmt((p, p, p)))
            attrs = ET.SubElement(vs, "attributes")
            for kind in kinds:
                _text(attrs, kind, str(c) if kind == "channel" else "0")
        for kind in kinds:
            block = ET.SubElement(setups, "Attributes", name=kind)
            for i in range(planes if kind == "channel" else 1):
                entry = ET.SubElement(block, kind.capitalize())
                _text(entry, "id", str(i))
                _text(entry, "name", names[i] if kind == "channel" and planes > 1 else str(i))
        tps = ET.SubElement(seq, "Timepoints", type="range")
        _text(tps, "first", "0")
        _text(tps, "last", "0")
        regs = ET.SubElement(root, "ViewRegistrations")
        for c in range(planes):
            reg = ET.SubElement(regs, "ViewRegistration", timepoint="0", setup=str(c))
            vt = ET.SubElement(reg, "ViewTransform", type="affine")
            _text(vt, "Name", "calibration")
            affine = (p, 0.0, 0.0, 0.0, 0.0, p, 0.0, 0.0, 0.0, 0.0, p, 0.0)
            _text(vt, "affine", _fmt(affine))
        ET.indent(root)
        return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"

    def tile_map_name(self, level: int) -> str:
        """Beside BigDataViewer's tree (which BDV does not look at), as in plain HDF5."""
        return level_name(TILE_MAP, level)

    def write_companions(self, out: Path, arrays: list[ArraySpec], meta: Metadata) -> None:
        xml, h5 = bdv_paths(out)
        tmp = xml.with_name(f"{xml.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(self.xml(os.path.relpath(h5, xml.parent), arrays, meta))
            durable_replace(tmp, xml)
        finally:
            tmp.unlink(missing_ok=True)
