"""The tile source seam: every reader through the conformance check; arrays a notebook holds
stitch and register like the same tiles in TIFF files."""

import dask
import dask.array as da
import numpy as np
import pytest
import tifffile

from lazystitch.errors import TileError
from lazystitch.fusion import fuse
from lazystitch.io import from_arrays, open_tiles_pattern
from lazystitch.layout import grid_layout, positions_layout
from lazystitch.registration import register
from lazystitch.testing import (
    check_tile_set,
    make_registration_tiles,
    make_tiles,
    reference_stitch,
)


@pytest.fixture
def synthetic(tmp_path):
    return make_tiles(tmp_path, grid=(2, 3), tile_yx=(60, 70), overlap=(12, 14), jitter=3, seed=8)


def _layout(s, tiles):
    keys = sorted(s.positions)
    return positions_layout(keys, np.array([s.positions[k] for k in keys]), tiles.tile_yx, "test")


@pytest.mark.parametrize("lead", [(), (3,)], ids=["2d", "zstack"])
def test_tiff_tiles_pass_the_conformance_check(tmp_path, lead):
    s = make_tiles(tmp_path, grid=(2, 2), tile_yx=(40, 52), overlap=8, lead=lead, seed=1)
    tiles = open_tiles_pattern(s.pattern, s.positions)
    assert tiles.axes == ("zyx" if lead else "yx")
    check_tile_set(tiles, expected=s.tiles)
    for path in tiles.paths:  # compressed and stored in 16 x 16 tiles: read by segments
        tifffile.imwrite(
            path, tifffile.imread(path), tile=(16, 16), compression="zlib", photometric="minisblack"
        )
    check_tile_set(open_tiles_pattern(s.pattern, s.positions), expected=s.tiles)


@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_arrays_pass_the_check_and_fuse_like_their_tiff_files(synthetic, kind):
    s = synthetic
    wrap = (lambda a: a) if kind == "numpy" else (lambda a: da.from_array(a, chunks=(25, 30)))
    tiles = from_arrays({k: wrap(v) for k, v in s.tiles.items()})
    check_tile_set(tiles, expected=s.tiles)
    files = open_tiles_pattern(s.pattern, s.positions)
    layout = _layout(s, tiles)
    got = fuse(tiles, layout, blend="linear", chunks=(32, 48)).compute(scheduler="sync")
    np.testing.assert_array_equal(got, reference_stitch(s.tiles, s.positions, "linear"))
    np.testing.assert_array_equal(got, fuse(files, layout, blend="linear").compute())


def test_arrays_are_not_read_until_computed(synthetic):
    def boom():
        raise RuntimeError("pixels were read")

    lazy = {
        k: da.from_delayed(dask.delayed(boom)(), shape=v.shape, dtype=v.dtype)
        for k, v in synthetic.tiles.items()
    }
    tiles = from_arrays(lazy)  # headers only: no pixel is computed
    mosaic = fuse(tiles, _layout(synthetic, tiles))
    with pytest.raises(RuntimeError, match="pixels were read"):
        mosaic.compute(scheduler="sync")


def test_arrays_register_like_their_tiff_files(tmp_path):
    s = make_registration_tiles(
        tmp_path, grid=(3, 3), tile_yx=(256, 256), overlap=0.1, jitter=4, seed=5
    )
    files = open_tiles_pattern(s.pattern, s.true_positions)
    arrays = from_arrays(
        {k: tifffile.imread(p) for k, p in zip(files.keys, files.paths, strict=True)}
    )
    layout = grid_layout(3, 3, files.tile_yx, s.overlap_px)
    a = register(arrays, layout, max_shift=10, check_layout=False)
    b = register(files, layout, max_shift=10, check_layout=False)
    np.testing.assert_allclose(a.layout.positions, b.layout.positions, atol=1e-9)


def test_array_metadata_is_checked_and_kept():
    t = np.zeros((3, 2, 10, 12), np.uint16)
    tiles = from_arrays(
        {(0, 0): t, (0, 1): t},
        axes="czyx",
        pixel_size=(2.0, 0.5, 0.5),
        positions={(0, 0): (0.0, 0.0, 0.0), (0, 1): (0.0, 0.0, 5.5)},
        channels=["dapi", "gfp", "rfp"],
    )
    src = tiles.sources[(0, 1)]
    assert (src.axes, src.spatial_axes, src.pixel_size) == ("czyx", "zyx", (2.0, 0.5, 0.5))
    assert src.position == (0.0, 0.0, 5.5) and src.channels == ("dapi", "gfp", "rfp")
    assert from_arrays({(0, 0): t}, pixel_size=0.65).sources[(0, 0)].pixel_size == (
        None,
        0.65,
        0.65,
    )
    check_tile_set(tiles)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"axes": "yxz"}, r"array \(row 0, col 0\): axes 'yxz' must be"),
        ({"axes": "cyx"}, "axes 'cyx' name 3 axes but the tile has 4"),
        ({"channels": ["a", "b"]}, r"2 channel names for 3 channels"),
        ({"axes": "tzyx", "channels": ["a", "b", "c"]}, "have no 'c'"),
        ({"pixel_size": (1.0, 0.5)}, "must be one positive value, or one per axis of 'zyx'"),
        ({"pixel_size": -1}, "must be one positive value"),
        ({"positions": {(0, 0): (1.0, 2.0, 3.0)}}, r"col 1\): no stage position"),
        ({"positions": {(0, 0): (1.0, 2.0), (0, 1): (1, 2)}}, "must be 3 finite values"),
    ],
)
def test_bad_array_metadata_names_the_tile(kwargs, message):
    t = np.zeros((3, 2, 10, 12), np.uint16)
    with pytest.raises(TileError, match=message):
        from_arrays({(0, 0): t, (0, 1): t}, **kwargs)


def test_arrays_of_another_shape_are_named():
    with pytest.raises(TileError, match=r"array \(row 0, col 1\).*has shape \(9, 12\).*one shape"):
        from_arrays({(0, 0): np.zeros((10, 12)), (0, 1): np.zeros((9, 12))})


class _Shifted:
    """A broken reader: every window comes back one column off."""

    def __init__(self, array):
        self.array = array

    def read(self, window, view=False):
        ys, xs = window
        xs = slice(min(xs.start + 1, self.array.shape[-1] - 1), xs.stop)
        part = self.array[..., ys, xs]
        return np.pad(
            part,
            [(0, 0)] * (part.ndim - 1) + [(0, window[1].stop - window[1].start - part.shape[-1])],
        ), part.nbytes


def test_the_conformance_check_catches_a_reader_that_reads_the_wrong_window(synthetic):
    import dataclasses

    tiles = from_arrays(synthetic.tiles)
    key = tiles.keys[0]
    broken = dataclasses.replace(tiles.sources[key], reader=_Shifted(synthetic.tiles[key]))
    bad = dataclasses.replace(tiles, sources={**tiles.sources, key: broken})
    with pytest.raises(AssertionError, match=r"array \(row 0, col 0\)"):
        check_tile_set(bad)
