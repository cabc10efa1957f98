import pickle

import numpy as np
import pytest
import tifffile

from lazystitch.errors import ConfigError, TileError, TileNotFoundError
from lazystitch.io import open_tiles, open_tiles_pattern, tiff_header, tile_paths
from lazystitch.testing import make_tiles


@pytest.fixture
def tileset(tmp_path):
    return make_tiles(tmp_path, grid=(2, 2), tile_yx=(32, 40), overlap=(6, 8))


def test_headers_give_shape_and_dtype_without_reading_pixels(tileset):
    ts = open_tiles_pattern(tileset.pattern, tileset.positions)
    assert ts.shape == (32, 40) and ts.dtype == np.uint16
    tile = ts.dask_tile((1, 0))
    assert tile.shape == (32, 40) and tile.dtype == np.uint16
    np.testing.assert_array_equal(tile.compute(), tileset.tiles[(1, 0)])


def test_stack_leading_axes_ride_along(tmp_path):
    s = make_tiles(tmp_path, grid=(1, 2), tile_yx=(16, 16), overlap=4, lead=(3,))
    ts = open_tiles_pattern(s.pattern, s.positions)
    assert ts.shape == (3, 16, 16)
    np.testing.assert_array_equal(ts.dask_tile((0, 1)).compute(), s.tiles[(0, 1)])


def test_missing_tile_is_named(tileset):
    (tileset.directory / "tile_r001_c001.tif").unlink()
    with pytest.raises(TileNotFoundError, match=r"tile_r001_c001\.tif does not exist"):
        open_tiles_pattern(tileset.pattern, tileset.positions)


def test_truncated_tiff_is_named(tileset):
    path = tileset.directory / "tile_r000_c001.tif"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(TileError, match=r"tile_r000_c001\.tif is truncated"):
        open_tiles_pattern(tileset.pattern, tileset.positions)


def test_truncated_compressed_tiff_is_named(tmp_path):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), compression="zlib")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TileError, match=r"truncated|not a readable TIFF"):
        tiff_header(path)


def test_not_a_tiff_is_named(tmp_path):
    path = tmp_path / "t.tif"
    path.write_text("hello")
    with pytest.raises(TileError, match=r"t\.tif is not a readable TIFF"):
        tiff_header(path)


def test_rgb_is_rejected(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(TileError, match="samples per pixel"):
        tiff_header(path)


@pytest.mark.parametrize(
    ("replacement", "message"),
    [
        (np.zeros((32, 41), np.uint16), r"has shape \(32, 41\).*all tiles must have one shape"),
        (np.zeros((32, 40), np.uint8), r"has dtype uint8.*all tiles must have one dtype"),
        (np.zeros((2, 32, 40), np.uint16), r"has shape \(2, 32, 40\)"),
    ],
)
def test_mismatched_tile_is_named(tileset, replacement, message):
    tifffile.imwrite(tileset.directory / "tile_r001_c000.tif", replacement)
    with pytest.raises(TileError, match=r"tile_r001_c000\.tif \(row 1, col 0\) " + message):
        open_tiles_pattern(tileset.pattern, tileset.positions)


def test_tile_changed_after_check_fails_clearly_at_compute(tileset):
    ts = open_tiles_pattern(tileset.pattern, tileset.positions)
    tifffile.imwrite(tileset.directory / "tile_r000_c000.tif", np.zeros((5, 5), np.uint16))
    with pytest.raises(TileError, match="changed after it was checked"):
        ts.dask_tile((0, 0)).compute()


def test_tileset_and_tasks_pickle(tileset):
    ts = open_tiles_pattern(tileset.pattern, tileset.positions)
    again = pickle.loads(pickle.dumps(ts))
    assert again.sources == ts.sources
    arr = pickle.loads(pickle.dumps(ts.dask_tile((0, 0))))
    np.testing.assert_array_equal(arr.compute(), tileset.tiles[(0, 0)])


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("t_{row}.tif", "must contain"),
        ("t_{row}_{col}_{z}.tif", "unknown field"),
        ("t_{row}_{col.tif", "not a valid pattern"),
    ],
)
def test_bad_patterns(pattern, message):
    with pytest.raises(ConfigError, match=message):
        tile_paths(pattern, [(0, 0)], cols=1)


def test_pattern_format_specs_start_and_index():
    paths = tile_paths("d/t_r{row:03d}_c{col:02d}_{index}.tif", [(1, 2)], cols=3, start=1)
    assert str(paths[(1, 2)]) == "d/t_r002_c03_6.tif"


def test_open_tiles_reports_count_of_bad_files(tmp_path):
    with pytest.raises(TileNotFoundError, match=r"and 2 more bad tile"):
        open_tiles(
            {(0, 0): tmp_path / "a.tif", (0, 1): tmp_path / "b.tif", (1, 0): tmp_path / "c.tif"}
        )


def test_errors_keep_their_type_across_processes():
    """A worker's error reaches the client as the same class (distributed pickles it with
    tblib), so the CLI can word it and the user can catch it."""
    import distributed  # noqa: F401  (installs tblib's exception pickling)
    from distributed.protocol import pickle

    from lazystitch import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, Exception):
            try:
                raise cls("boom") from None
            except cls as exc:
                back = pickle.loads(pickle.dumps(exc))
            assert type(back) is cls and str(back) == "boom"
