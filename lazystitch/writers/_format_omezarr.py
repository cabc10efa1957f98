"""The OME-Zarr format (OME-NGFF 0.5 on Zarr v3 by default, 0.4 on Zarr v2): a folder
``OUT.ome.zarr`` whose group holds one array per pyramid level, ``0``, ``1``, ... .

The format supplies what the core asks of every format: the arrays' layout, an encoder, and
the metadata. zarr-python creates the arrays (their ``zarr.json`` / ``.zarray``) and encodes
every chunk that is compressed or sharded; ome-zarr-models builds and validates the
multiscales metadata. The chunk bytes are computed on the workers like every format's and
written by the core's one writer into the chunk's own file (``_commit_zarr``), so the
exactly-once and resume promises hold as they do for HDF5.

With Zarr v3 sharding (``shard``: shards of that many storage chunks), the unit of work is
the shard: one task computes a whole shard and encodes all its inner chunks, and one write
puts the shard file in place; two writers never share a shard.

Metadata (facts: ``../shared/notes/formats.md`` section 3b): axes named and typed
(``c`` channel, ``z``/``y``/``x`` space in ``micrometer`` when the pixel size is known), per
level a ``scale`` (the level's pixel size) and the ``translation`` ``0.5 (f - 1)`` pixels of
level 0 that keeps a block-mean level's pixel centres on the mosaic's (as BigDataViewer's
mipmap transform does), ``dimension_names`` on every v3 array, and an ``omero`` block with the
channel names and contrast windows (from the coarsest level, once it is written).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lazystitch.errors import ConfigError
from lazystitch.writers._codec import ChunkCodec, Compression
from lazystitch.writers._format import Metadata
from lazystitch.writers._plan import TILE_MAP, ArraySpec

__all__ = ["OmeZarr", "ZarrCodec", "default_axes", "is_zarr_output", "zarr_header"]

LAZYSTITCH_ATTR = "lazystitch"  # the group's attribute with the run header and completeness
_COLORS = ("FFFFFF", "00FF00", "FF00FF", "00FFFF", "FF0000", "0000FF", "FFFF00")


def default_axes(ndim: int, channels: bool) -> str:
    """The axis names of a mosaic of ``ndim`` dimensions (a leading channel axis if any).

    Examples
    --------
    >>> default_axes(3, True), default_axes(3, False), default_axes(4, True)
    ('cyx', 'zyx', 'czyx')
    """
    if ndim == 2:
        return "yx"
    if ndim == 3:
        return "cyx" if channels else "zyx"
    if ndim == 4:
        return "czyx"
    if ndim == 5:
        return "tczyx"
    raise ConfigError(f"output: OME-Zarr holds 2 to 5 dimensions; the mosaic has {ndim}")


def _lazystitch_attr(path: Path) -> Any:
    """The group attribute lazystitch writes (run header and completeness) of a Zarr folder
    (v3 ``zarr.json`` or v2 ``.zattrs``), or None."""
    for meta in ("zarr.json", ".zattrs"):
        f = path / meta
        if not f.is_file():
            continue
        try:
            attrs = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        attrs = attrs.get("attributes", {}) if meta == "zarr.json" else attrs
        return attrs.get(LAZYSTITCH_ATTR) if isinstance(attrs, dict) else None
    return None


def is_zarr_output(path: Path) -> bool:
    """Whether ``path`` is a folder lazystitch wrote as OME-Zarr (complete or not)."""
    return _lazystitch_attr(path) is not None


def zarr_header(path: Path) -> dict | None:
    """The run header of a complete OME-Zarr output, or None (missing, partial, not ours)."""
    run = _lazystitch_attr(path)
    if isinstance(run, dict) and run.get("complete") and isinstance(run.get("run"), dict):
        return run["run"]
    return None


def _compressor(codec: ChunkCodec, zarr_format: int) -> Any:
    """zarr-python's compressor for ``codec`` (None: uncompressed)."""
    comp, level = codec.compression, codec.level
    if comp is Compression.none:
        return None
    assert level is not None  # every compressor but none and lzf has one
    if zarr_format == 2:
        import numcodecs  # type: ignore[import-untyped]

        if comp is Compression.gzip:
            return numcodecs.GZip(level=level)
        if comp is Compression.zstd:
            return numcodecs.Zstd(level=level)
        return numcodecs.Blosc(cname="zstd", clevel=level, shuffle=numcodecs.Blosc.SHUFFLE)
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    if comp is Compression.gzip:
        return GzipCodec(level=level)
    if comp is Compression.zstd:
        return ZstdCodec(level=level)
    return BloscCodec(cname="zstd", clevel=level, shuffle="shuffle")


@dataclass(frozen=True)
class ZarrCodec:
    """Encodes a unit (a chunk, or with ``inner`` a whole shard) as the bytes of its Zarr
    object: zarr-python writes it into an in-memory array of the same settings and the
    object's bytes are taken from there. Uncompressed unsharded chunks are their C-order
    little-endian bytes, padded to the chunk shape as Zarr stores edge chunks: no copy."""

    codec: ChunkCodec
    zarr_format: int
    inner: tuple[int, ...] | None = None  # storage chunks inside a shard (v3 sharding)

    def __str__(self) -> str:
        return str(self.codec)

    def for_array(self, spec: Any) -> ZarrCodec:
        """This encoder, with the array's own compression where it has one (the tile map's)."""
        return replace(self, codec=self.codec.for_array(spec)) if spec.codec else self

    def array_kwargs(self, shape: tuple[int, ...], dtype: Any, unit: tuple[int, ...]) -> dict:
        """``zarr.create_array`` settings of an array of ``shape`` whose units are ``unit``."""
        kw: dict[str, Any] = {
            "shape": shape,
            "dtype": np.dtype(dtype),
            "zarr_format": self.zarr_format,
            "fill_value": 0,
            "compressors": _compressor(self.codec, self.zarr_format),
            "config": {"write_empty_chunks": True},
        }
        if self.inner is not None:
            kw["chunks"] = tuple(min(i, u) for i, u in zip(self.inner, unit, strict=True))
            kw["shards"] = unit
        else:
            kw["chunks"] = unit
        if self.zarr_format == 2:  # nested chunk keys, as the 0.4 layout and ome-zarr-py use
            kw["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        return kw

    def encode(self, block: np.ndarray, chunk_shape: tuple[int, ...]) -> tuple[Any, int]:
        comp = self.codec.compression
        if self.inner is None and comp in (Compression.none, Compression.gzip):
            if block.shape != tuple(chunk_shape):
                full = np.zeros(chunk_shape, dtype=block.dtype)
                full[tuple(slice(0, s) for s in block.shape)] = block
                block = full
            raw = np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<"))
            if comp is Compression.none:
                return raw, 0
            # gzip: the stream Zarr's gzip codec (v3) and compressor (v2) write, made here
            # without an in-memory array per chunk (measured: 1.6 s more for 8 x 8 tiles'
            # tile map through zarr-python than through zlib)
            assert self.codec.level is not None  # gzip always has one
            return gzip.compress(raw.data.cast("B"), self.codec.level, mtime=0), 0
        import zarr
        from zarr.storage import MemoryStore

        objects: dict[str, Any] = {}  # the in-memory store's keys and their bytes
        kw = self.array_kwargs(block.shape, block.dtype, tuple(chunk_shape))
        arr = zarr.create_array(MemoryStore(objects), **kw)
        arr[...] = block
        meta = (".zarray", ".zattrs", ".zgroup", "zarr.json")
        keys = [k for k in objects if k.rsplit("/", 1)[-1] not in meta]
        if len(keys) != 1:
            raise RuntimeError(f"a unit of {chunk_shape} encoded into {len(keys)} Zarr objects")
        return objects[keys[0]].to_bytes(), 0


class OmeZarr:
    """OME-Zarr output of OME-NGFF ``version`` ``"0.5"`` (Zarr v3) or ``"0.4"`` (Zarr v2)."""

    container = "zarr"

    def __init__(self, version: str = "0.5", shard: tuple[int, ...] | None = None) -> None:
        if version not in ("0.4", "0.5"):
            raise ConfigError(
                f"output.ome_zarr_version: {version!r} is not one of 0.4, 0.5 (0.5 needs "
                "Zarr v3, 0.4 is Zarr v2 for MoBIE and older tools)"
            )
        if shard is not None and version == "0.4":
            raise ConfigError(
                "output.shard: OME-Zarr 0.4 is Zarr v2, which has no sharding; use "
                "--ome-zarr-version 0.5 or leave --shard out"
            )
        self.version, self.shard = version, shard
        self.name = "ome-zarr"
        self.zarr_format: Literal[2, 3] = 3 if version == "0.5" else 2

    def data_path(self, out: Path) -> Path:
        return out

    def companions(self, out: Path) -> list[Path]:
        return []

    def check(
        self, shape: tuple[int, ...], dtype: np.dtype, codec: ChunkCodec, channels: int = 0
    ) -> None:
        try:
            import ome_zarr_models  # noqa: F401
            import zarr  # noqa: F401
        except ImportError:
            raise ConfigError(
                "output.format: ome-zarr needs zarr-python 3 and ome-zarr-models (Python >= "
                "3.11): pip install 'lazystitch[zarr]'"
            ) from None
        if codec.compression is Compression.lzf:
            raise ConfigError(
                "output.compression: lzf is an HDF5 filter that Zarr has no codec for; use "
                "none, gzip, zstd or blosc"
            )
        default_axes(len(shape), bool(channels))

    def write_companions(self, out: Path, arrays: list[ArraySpec], meta: Metadata) -> None:
        return None  # everything is inside the folder

    def encoder(self, codec: ChunkCodec, chunks: tuple[int, ...]) -> ZarrCodec:
        """The encoder of this output's units (``chunks``: level 0's storage chunks)."""
        return ZarrCodec(codec, self.zarr_format, chunks if self.shard is not None else None)

    def arrays(
        self,
        dataset: str,
        shapes: list[tuple[int, ...]],
        dtype: np.dtype,
        chunks: list[tuple[int, ...]],
        channels: int = 0,
    ) -> list[ArraySpec]:
        """One array per level, named ``0``, ``1``, ...; with sharding each unit is a shard
        of ``shard`` storage chunks (fewer where the level has fewer)."""
        from lazystitch.writers._shards import shard_shape

        shard = None if self.shard is None else shard_shape(len(shapes[0]), self.shard)
        specs = []
        for k, (shape, c) in enumerate(zip(shapes, chunks, strict=True)):
            unit = c
            if shard is not None:
                unit = tuple(
                    min(n, -(-s // ci)) * ci for n, s, ci in zip(shard, shape, c, strict=True)
                )
            specs.append(ArraySpec(str(k), shape, str(np.dtype(dtype)), unit, k))
        return specs

    # --- metadata -------------------------------------------------------------------------

    def axes(self, arrays: list[ArraySpec], meta: Metadata) -> str:
        axes = meta.axes or default_axes(len(arrays[0].shape), bool(meta.channels))
        if len(axes) != len(arrays[0].shape):
            raise ConfigError(f"output: axes {axes!r} do not fit a {arrays[0].shape} mosaic")
        return axes

    def tile_map_name(self, level: int) -> str:
        """An NGFF label image of the mosaic: ``labels/tile_map/0``, ``1``, ..."""
        return f"labels/{TILE_MAP}/{level}"

    def _multiscale(
        self, arrays: list[ArraySpec], meta: Metadata, names: str, name: str, kind: str
    ) -> Any:
        """The multiscale of ``arrays`` (one source's levels), each level's path its number."""
        if self.version == "0.5":
            from ome_zarr_models.v05.axes import Axis
            from ome_zarr_models.v05.multiscales import Dataset, Multiscale
        else:
            from ome_zarr_models.v04.axes import Axis  # type: ignore[assignment]
            from ome_zarr_models.v04.multiscales import (  # type: ignore[assignment]
                Dataset,
                Multiscale,
            )

        px = meta.pixel_size
        unit = "micrometer" if px is not None else None
        kinds = {"c": "channel", "t": "time"}
        axes = [
            Axis(name=a, type=kinds.get(a, "space"), unit=unit if a in "zyx" else None)
            for a in names
        ]
        scales: list[list[float]] = []
        translations: list[list[float] | None] = []
        for a in arrays:
            f = 2**a.level
            p = 1.0 if px is None else float(px)
            scales.append([p * f if n in "yx" else 1.0 for n in names])
            shift = [0.5 * (f - 1) * p if n in "yx" else 0.0 for n in names]
            translations.append(shift if a.level else None)
        return Multiscale(
            axes=tuple(axes),
            datasets=tuple(
                Dataset.build(path=str(a.level), scale=sc, translation=tr)
                for a, sc, tr in zip(arrays, scales, translations, strict=True)
            ),
            name=name,
            type=kind,
            **({} if self.version == "0.5" else {"version": "0.4"}),  # 0.4: MUST
        )

    def group_attrs(
        self,
        arrays: list[ArraySpec],
        meta: Metadata,
        run: dict[str, Any],
        windows: list[tuple[float, float]] | None = None,
    ) -> dict[str, Any]:
        """The group's attributes, built and validated with ome-zarr-models: the OME
        multiscales and omero blocks, and lazystitch's own (the run header, ``run``).
        ``arrays``: the mosaic's levels."""
        if self.version == "0.5":
            from ome_zarr_models.v05.image import ImageAttrs
        else:
            from ome_zarr_models.v04.image import ImageAttrs  # type: ignore[assignment]
        from ome_zarr_models.common.omero import Omero

        names = self.axes(arrays, meta)
        # the models of the group's attributes (Image.new would also model the arrays, but
        # in ome-zarr-models 1.7 its 0.4 Image fails to validate once the 0.5 one has been
        # used in the process; the arrays are checked against these attributes in the tests)
        # type "mean": 2x2 block means, rounded to nearest for integers
        multiscale = self._multiscale(arrays, meta, names, "mosaic", "mean")
        if self.version == "0.5":
            model = ImageAttrs(multiscales=[multiscale], version="0.5")
            attrs = {"ome": model.model_dump(mode="json", exclude_none=True)}
        else:
            model = ImageAttrs(multiscales=[multiscale])  # type: ignore[call-arg]
            attrs = model.model_dump(mode="json", exclude_none=True)
        omero = Omero.model_validate(self._omero(arrays, meta, names, windows))
        block = attrs["ome"] if self.version == "0.5" else attrs
        block["omero"] = omero.model_dump(mode="json", exclude_none=True)
        attrs[LAZYSTITCH_ATTR] = run
        return attrs

    def label_attrs(
        self, images: list[ArraySpec], tile_map: list[ArraySpec], meta: Metadata
    ) -> dict[str, dict[str, Any]]:
        """The attributes of the ``labels`` group and of the tile map's image-label group
        (by their paths), built and validated with ome-zarr-models: the tile map's
        multiscale (type ``nearest``), its source image, and one property per label with
        the (row, col) of its tile."""
        if self.version == "0.5":
            from ome_zarr_models.v05.image_label import ImageLabelAttrs
            from ome_zarr_models.v05.image_label_types import Label
            from ome_zarr_models.v05.labels import LabelsAttrs
        else:
            from ome_zarr_models.v04.image_label import (  # type: ignore[assignment]
                ImageLabelAttrs,
            )
            from ome_zarr_models.v04.image_label_types import Label  # type: ignore[assignment]
            from ome_zarr_models.v04.labels import LabelsAttrs  # type: ignore[assignment]
        names = self.axes(images, meta)
        multiscale = self._multiscale(tile_map, meta, names, TILE_MAP, "nearest")
        props = [
            {"label-value": n, "tile_row": r, "tile_col": c}
            for n, (r, c) in enumerate(meta.tiles or (), 1)
        ]
        label = Label.model_validate(
            {"version": self.version, "source": {"image": "../../"}, "properties": props}
        )
        version = {"version": "0.5"} if self.version == "0.5" else {}
        image_label = ImageLabelAttrs.model_validate(
            {**version, "image-label": label, "multiscales": [multiscale]}
        )
        labels = LabelsAttrs.model_validate({**version, "labels": [TILE_MAP]})
        out = {}
        for path, model in (("labels", labels), (f"labels/{TILE_MAP}", image_label)):
            dump = model.model_dump(mode="json", exclude_none=True, by_alias=True)
            out[path] = {"ome": dump} if self.version == "0.5" else dump
        return out

    def _omero(
        self,
        arrays: list[ArraySpec],
        meta: Metadata,
        names: str,
        windows: list[tuple[float, float]] | None,
    ) -> dict[str, Any]:
        dtype = np.dtype(arrays[0].dtype)
        if np.issubdtype(dtype, np.integer):
            lo, hi = float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)
        else:
            lo, hi = 0.0, 1.0
        n = arrays[0].shape[0] if "c" in names else 1
        labels = list(meta.channels or ()) or [f"channel {i}" for i in range(n)]
        windows = windows or [(lo, hi)] * n
        return {
            "channels": [
                {
                    "label": labels[i],
                    "color": _COLORS[i % len(_COLORS)] if n > 1 else "FFFFFF",
                    "window": {"min": lo, "max": hi, "start": windows[i][0], "end": windows[i][1]},
                    "active": True,
                }
                for i in range(n)
            ],
            "rdefs": {"model": "color" if n > 1 else "greyscale"},
        }
