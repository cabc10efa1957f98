"""Chunk encoding on the workers, through HDF5's own filter pipeline."""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import numpy as np

__all__ = ["ChunkCodec", "Compression", "Encoder"]


class Encoder(Protocol):
    """What the tasks encode a unit with: a :class:`ChunkCodec` (HDF5) or a format's own
    (``_format_omezarr.ZarrCodec``). Picklable; ``str`` names it in the run header."""

    def encode(self, block: np.ndarray, chunk_shape: tuple[int, ...]) -> tuple[Any, int]:
        """The unit's stored bytes (or a contiguous array of them) and their filter mask."""
        ...

    def for_array(self, spec: Any) -> Encoder:
        """The encoder of the array ``spec`` (an ``ArraySpec``): this one, or the same with
        the array's own compression where it has one (``spec.codec``)."""
        ...


class Compression(str, Enum):
    """Compression of the HDF5 chunks. ``blosc`` (blosc with zstd inside) and ``zstd`` need
    ``hdf5plugin`` to read (``import hdf5plugin`` before h5py opens the file)."""

    none = "none"
    gzip = "gzip"
    lzf = "lzf"
    blosc = "blosc"
    zstd = "zstd"


_LEVELS = {
    Compression.gzip: (range(0, 10), 4),
    Compression.blosc: (range(0, 10), 5),
    Compression.zstd: (range(1, 23), 3),
}


@dataclass(frozen=True)
class ChunkCodec:
    """How chunks are compressed, and the means to encode one exactly as HDF5 would.

    Examples
    --------
    >>> ChunkCodec.parse("gzip:6")
    ChunkCodec(compression=<Compression.gzip: 'gzip'>, level=6)
    >>> ChunkCodec.parse("lzf").dataset_kwargs()
    {'compression': 'lzf'}
    """

    compression: Compression = Compression.none
    level: int | None = None

    def __post_init__(self) -> None:
        comp = Compression(self.compression)
        object.__setattr__(self, "compression", comp)
        if comp in _LEVELS:
            allowed, default = _LEVELS[comp]
            level = default if self.level is None else int(self.level)
            if level not in allowed:
                raise ValueError(
                    f"compression level {level} is out of range for {comp.value} "
                    f"({allowed.start}..{allowed.stop - 1})"
                )
            object.__setattr__(self, "level", level)
        elif self.level is not None:
            raise ValueError(f"compression {comp.value} takes no level")

    @classmethod
    def parse(cls, spec: str) -> ChunkCodec:
        """Parse ``"name"`` or ``"name:level"``, e.g. ``"gzip:6"``."""
        name, _, level = str(spec).partition(":")
        try:
            comp = Compression(name.strip().lower())
        except ValueError:
            allowed = ", ".join(c.value for c in Compression)
            raise ValueError(f"unknown compression {name!r}; allowed: {allowed}") from None
        try:
            lvl = int(level) if level else None
        except ValueError:
            raise ValueError(f"compression level {level!r} is not an integer") from None
        return cls(comp, lvl)

    def __str__(self) -> str:
        return self.compression.value + ("" if self.level is None else f":{self.level}")

    def for_array(self, spec: Any) -> ChunkCodec:
        """This codec, or ``spec.codec`` where the array has its own (the tile map's).

        Examples
        --------
        >>> from lazystitch.writers._plan import ArraySpec
        >>> tile_map = ArraySpec("tile_map", (8, 8), "uint8", (4, 4), codec="gzip:1")
        >>> str(ChunkCodec().for_array(tile_map))
        'gzip:1'
        """
        return ChunkCodec.parse(spec.codec) if spec.codec else self

    def dataset_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``h5py.Group.create_dataset``."""
        comp = self.compression
        if comp is Compression.none:
            return {}
        if comp is Compression.gzip:
            return {"compression": "gzip", "compression_opts": self.level}
        if comp is Compression.lzf:
            return {"compression": "lzf"}
        import hdf5plugin

        assert self.level is not None  # set for both by __post_init__
        if comp is Compression.zstd:
            return dict(hdf5plugin.Zstd(clevel=self.level))
        return dict(
            hdf5plugin.Blosc(cname="zstd", clevel=self.level, shuffle=hdf5plugin.Blosc.SHUFFLE)
        )

    def encode(
        self, block: np.ndarray, chunk_shape: tuple[int, ...]
    ) -> tuple[bytes | np.ndarray, int]:
        """Encode one block as the bytes of a full HDF5 chunk of ``chunk_shape``.

        Edge blocks are zero-padded to the full chunk shape, as HDF5 stores them. ``gzip`` is
        zlib's own stream, the one HDF5's deflate filter writes and reads, compressed outside
        HDF5's library-wide lock (h5py lets one thread at a time into HDF5: encoding there
        held up the writing thread's writes; measured, 3.3 ms a 1 MB chunk of labels, mostly
        waiting). The other filters run inside a throw-away in-memory HDF5 file, so the bytes
        are exactly what ``write_direct_chunk`` expects for a dataset created with
        :meth:`dataset_kwargs`.

        Returns
        -------
        (bytes or ndarray, int)
            The encoded chunk (uncompressed chunks stay the contiguous array: no copy) and its
            filter mask.
        """
        if block.shape != tuple(chunk_shape):
            full = np.zeros(chunk_shape, dtype=block.dtype)
            full[tuple(slice(0, s) for s in block.shape)] = block
            block = full
        block = np.ascontiguousarray(block)
        if self.compression is Compression.none:
            return block, 0
        if self.compression is Compression.gzip:
            return zlib.compress(block.data.cast("B"), self.level or 0), 0
        import h5py

        if self.compression in (Compression.blosc, Compression.zstd):
            import hdf5plugin  # noqa: F401  (registers the filters in this process)
        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            ds = f.create_dataset(
                "c",
                shape=chunk_shape,
                chunks=chunk_shape,
                dtype=block.dtype,
                **self.dataset_kwargs(),
            )
            ds.write_direct(block)
            mask, data = ds.id.read_direct_chunk((0,) * len(chunk_shape))
        return bytes(data), int(mask)
