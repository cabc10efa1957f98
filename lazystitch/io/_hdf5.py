"""Tiles held as datasets inside HDF5 files: ``FILE.h5:/group/tile_{row}_{col}``.

A tile location names the file and, after a colon, the dataset's path inside it. The header
check opens each file once and reads only dataset metadata; a task opens the file read-only,
reads the Y, X window (HDF5 reads only the chunks it touches) and closes it again, so nothing
open crosses processes. Pixel size comes from the ``element_size_um`` attribute where a
dataset has one (the convention of Fiji's HDF5 plugin and ilastik: micrometres per pixel,
one value per axis).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lazystitch._typing import Shape
from lazystitch.errors import TileError, TileNotFoundError
from lazystitch.io._source import DEFAULT_AXES, TileSource, Window, check_axes, stat_tile

__all__ = ["H5Reader", "hdf5_source", "split_container"]

_CONTAINER = re.compile(r"^(?P<file>.+?\.(?:h5|hdf5|hdf|he5|nxs))(?::(?P<inner>/.*))$", re.I)


def split_container(location: str | os.PathLike) -> tuple[Path, str] | None:
    """``(file, dataset path)`` if ``location`` names a dataset inside an HDF5 file.

    Examples
    --------
    >>> split_container("runs/tiles.h5:/scan1/tile_0_1")
    (PosixPath('runs/tiles.h5'), '/scan1/tile_0_1')
    >>> split_container("tiles/t_0_1.tif") is None
    True
    """
    m = _CONTAINER.match(os.fspath(location))
    if m is None:
        return None
    return Path(m["file"]), m["inner"]


@dataclass(frozen=True)
class H5Reader:
    """Reads windows of one HDF5 dataset, opening its file read-only inside the task."""

    file: str
    dataset: str
    shape: Shape
    dtype: np.dtype

    def read(self, window: Window, view: bool = False) -> tuple[np.ndarray, int]:
        import h5py

        where = f"{self.file}:{self.dataset}"
        try:
            with h5py.File(self.file, "r") as f:
                ds = f[self.dataset]
                if tuple(ds.shape) != tuple(self.shape) or ds.dtype != self.dtype:
                    raise TileError(
                        f"tile {where} changed after it was checked: expected "
                        f"{tuple(self.shape)} {self.dtype}, found {ds.shape} {ds.dtype}"
                    )
                index = (Ellipsis, *window)
                pixels = np.asarray(ds[index])
        except FileNotFoundError:
            raise TileNotFoundError(
                f"tile file {self.file} disappeared after it was checked"
            ) from None
        except TileError:
            raise
        except Exception as exc:
            raise TileError(f"tile {where} could not be read: {exc}") from None
        return pixels, int(pixels.nbytes)


def hdf5_source(file: str | os.PathLike, dataset: str) -> TileSource:
    """The :class:`~lazystitch.io.TileSource` of a dataset in an HDF5 file (metadata only).

    Raises
    ------
    TileNotFoundError
        If the file does not exist.
    TileError
        If it is not an HDF5 file, has no such dataset (naming the groups that are there),
        or the dataset is not a numeric array of at least Y, X.
    """
    import h5py

    path = Path(file)
    where = f"{path}:{dataset}"
    st = stat_tile(path, where)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise TileError(f"tile file {path} is not a readable HDF5 file: {exc}") from None
    with f:
        obj = f.get(dataset)
        if obj is None:
            parent = f.get(dataset.rsplit("/", 1)[0] or "/")
            there = sorted(parent)[:5] if isinstance(parent, h5py.Group) else []
            hint = f" (that group holds {', '.join(there)}...)" if there else ""
            raise TileError(f"tile {where}: {path} has no dataset {dataset}{hint}")
        if not isinstance(obj, h5py.Dataset):
            raise TileError(f"tile {where} is a group, not a dataset")
        shape = tuple(int(s) for s in obj.shape)
        dtype = np.dtype(obj.dtype)
        element = obj.attrs.get("element_size_um")
    if len(shape) < 2 or dtype.kind not in "uifb":
        raise TileError(
            f"tile {where} holds {shape} {dtype}; a tile is a numeric array of at least Y, X"
        )
    axes = check_axes(DEFAULT_AXES.get(len(shape), ""), len(shape), f"tile {where}")
    return TileSource(
        name=where,
        shape=shape,
        dtype=dtype,
        axes=axes,
        reader=H5Reader(str(path), dataset, shape, dtype),
        identity=f"{st.st_size}:{st.st_mtime_ns}:{dataset}",
        path=path,
        pixel_size=_element_size(element, axes),
    )


def _element_size(value: object, axes: str) -> tuple[float | None, ...] | None:
    """Micrometres per pixel along the spatial axes from ``element_size_um`` (one value per
    dataset axis), or None if absent or not of that form."""
    if value is None:
        return None
    sizes = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if sizes.shape != (len(axes),) or not np.all(np.isfinite(sizes) & (sizes > 0)):
        return None
    return tuple(float(s) for a, s in zip(axes, sizes, strict=True) if a in "zyx")
