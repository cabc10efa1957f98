"""Every tile of one container, in order: ``scan.ome.tif:*`` (every image series of a
multi-series TIFF), ``tiles.h5:/scan/*`` (every dataset of an HDF5 group), ``tiles.zarr/scan/*``
(every array of a Zarr group), ``scan.czi`` (every tile of a Zeiss tile scan),
``dataset.xml`` (every tile of a BigDataViewer / BigStitcher dataset).

Such a pattern numbers the tiles as an ``{index}`` pattern does (series in file order,
datasets and arrays by name, numbers in names compared as numbers), so a grid, ``tiles.order``
and a positions CSV work with it as with files; ``--positions metadata`` takes them along one
row, placed by their own stage positions.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lazystitch.errors import ConfigError, TileError, TileNotFoundError
from lazystitch.io._hdf5 import split_container
from lazystitch.io._source import split_numbered
from lazystitch.io._zarr import _zarr, split_zarr

__all__ = ["is_members", "list_members", "split_series"]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")


def is_members(pattern: str) -> bool:
    """Whether ``pattern`` names every member of a container (ends in ``:*`` or ``/*``).

    Examples
    --------
    >>> [is_members(p) for p in ("a.ome.tif:*", "t.h5:/g/*", "t.zarr/*", "t_{index}.tif")]
    [True, True, True, False]
    >>> is_members("scan.czi"), is_members("dataset.xml")  # files that hold a whole scan
    (True, True)
    """
    whole = pattern.endswith((":*", "/*")) or pattern.lower().endswith((".czi", ".xml"))
    return whole and "{" not in pattern


def split_series(location: str | os.PathLike) -> tuple[Path, int] | None:
    """``(file, series)`` for a location naming one image series of a TIFF (``FILE.tif:N``).

    Examples
    --------
    >>> split_series("scan.ome.tif:3")
    (PosixPath('scan.ome.tif'), 3)
    >>> split_series("scan.ome.tif") is None
    True
    """
    return split_numbered(location, TIFF_SUFFIXES)


def _natural(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"([0-9]+)", name)]


def list_members(pattern: str) -> list[str]:
    """The tile locations a member pattern names, in tile order.

    Raises
    ------
    TileNotFoundError
        If the container does not exist.
    TileError, ConfigError
        If it cannot be read, is not a container of that kind, or holds no member.
    """
    container = pattern[:-2] if pattern.endswith("*") else pattern
    if container.lower().endswith(".xml"):
        from lazystitch.io._bdv import bdv_locations

        found = bdv_locations(container)
    elif container.lower().endswith(".czi"):
        from lazystitch.io._czi import czi_locations

        found = czi_locations(container)
    elif pattern.endswith(":*") and container.lower().endswith(TIFF_SUFFIXES):
        found = _tiff_series(Path(container))
    elif (in_h5 := split_container(pattern[:-1])) is not None:
        file, group = in_h5
        found = [f"{file}:{group.rstrip('/')}/{n}" for n in _h5_datasets(file, group)]
    elif (in_zarr := split_zarr(container)) is not None:
        found = [f"{container}/{n}" for n in _zarr_arrays(*in_zarr)]
    else:
        raise ConfigError(
            f"tiles.pattern {pattern!r}: '*' takes every member of a container: "
            "'FILE.tif:*' (image series), 'FILE.h5:/group/*' (datasets), 'DIR.zarr/group/*'"
        )
    if not found:
        raise TileError(f"tiles.pattern {pattern!r}: {container} holds no tile")
    return found


def _tiff_series(path: Path) -> list[str]:
    import tifffile

    if not path.is_file():
        raise TileNotFoundError(f"tile file {path} does not exist")
    try:
        with tifffile.TiffFile(path) as tif:
            count = len(tif.series)
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise TileError(f"tile file {path} is not a readable TIFF: {exc}") from None
    return [f"{path}:{i}" for i in range(count)]


def _h5_datasets(path: Path, group: str) -> list[str]:
    import h5py

    if not path.is_file():
        raise TileNotFoundError(f"tile file {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            node = f.get(group or "/")
            if not isinstance(node, h5py.Group):
                raise TileError(f"tile file {path} has no group {group}")
            return sorted((k for k, v in node.items() if isinstance(v, h5py.Dataset)), key=_natural)
    except OSError as exc:
        raise TileError(f"tile file {path} is not a readable HDF5 file: {exc}") from None


def _zarr_arrays(store: Path, inner: str) -> list[str]:
    if not store.exists():
        raise TileNotFoundError(f"tile store {store} does not exist")
    zarr = _zarr()
    try:
        node = zarr.open_group(str(store), path=inner or None, mode="r")
    except Exception as exc:
        raise TileError(f"tile store {store}/{inner} has no readable group: {exc}") from None
    return sorted(node.array_keys(), key=_natural)
