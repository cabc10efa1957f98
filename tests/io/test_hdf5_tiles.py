"""Tiles held as datasets inside HDF5 files, from the API and the command line."""

import h5py
import numpy as np
import pytest

from lazystitch.errors import TileError, TileNotFoundError
from lazystitch.io import open_tiles_pattern
from lazystitch.testing import check_tile_set, make_tiles, reference_stitch

from ..test_cli import _read, one_line_error, run


@pytest.fixture
def synthetic(tmp_path):
    return make_tiles(
        tmp_path / "tiff", grid=(3, 3), tile_yx=(64, 80), overlap=(10, 16), jitter=4, seed=6
    )


def _into_one_file(s, path, chunks=None):
    with h5py.File(path, "w") as f:
        for (r, c), tile in s.tiles.items():
            f.create_dataset(f"scan/tile_{r}_{c}", data=tile, chunks=chunks)
    return f"{path}:/scan/tile_{{row}}_{{col}}"


@pytest.mark.parametrize("chunks", [None, (16, 24)], ids=["contiguous", "chunked"])
def test_hdf5_tiles_pass_the_conformance_check(tmp_path, synthetic, chunks):
    pattern = _into_one_file(synthetic, tmp_path / "tiles.h5", chunks)
    tiles = open_tiles_pattern(pattern, synthetic.positions)
    assert tiles.paths == [tmp_path / "tiles.h5"] and tiles.axes == "yx"
    check_tile_set(tiles, expected=synthetic.tiles)


def test_one_file_and_a_file_per_row_reproduce_the_tiff_mosaic(tmp_path, synthetic):
    s = synthetic
    one = _into_one_file(s, tmp_path / "tiles.h5", chunks=(32, 32))
    for r in range(3):  # a file per row, a dataset per column
        with h5py.File(tmp_path / f"row{r}.h5", "w") as f:
            for c in range(3):
                f[f"col_{c}"] = s.tiles[(r, c)]
    per_row = str(tmp_path / "row{row}.h5:/col_{col}")
    want = reference_stitch(s.tiles, s.positions, "linear")
    outs = {}
    for name, pattern in (("tiff", s.pattern), ("one", one), ("rows", per_row)):
        out = tmp_path / f"{name}.h5"
        proc = run(
            "stitch", "--tiles", pattern, "--positions", s.positions_csv, "--out", out,
            "--workers", "1",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outs[name] = _read(out)
        np.testing.assert_array_equal(outs[name], want)
    np.testing.assert_array_equal(outs["one"], outs["tiff"])


def test_pixel_size_comes_from_element_size_um(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        for c in range(2):
            ds = f.create_dataset(f"t_0_{c}", data=np.zeros((4, 20, 30), np.uint16))
            ds.attrs["element_size_um"] = [2.0, 0.325, 0.325]
    tiles = open_tiles_pattern(str(tmp_path / "t.h5:/t_{row}_{col}"), [(0, 0), (0, 1)])
    src = tiles.sources[(0, 1)]
    assert src.axes == "zyx" and src.pixel_size == (2.0, 0.325, 0.325)
    assert src.name == f"{tmp_path / 't.h5'}:/t_0_1"


def test_bad_hdf5_tiles_are_named(tmp_path, synthetic):
    pattern = _into_one_file(synthetic, tmp_path / "tiles.h5")
    with h5py.File(tmp_path / "tiles.h5", "a") as f:
        del f["scan/tile_1_2"]
        del f["scan/tile_2_0"]
        f.create_dataset("scan/tile_2_0", data=np.zeros((64, 81), np.uint16))
    keys = synthetic.positions
    with pytest.raises(
        TileError,
        match=r"tiles.h5:/scan/tile_1_2: .* has no dataset /scan/tile_1_2 \(that group holds tile_0_0",
    ):
        open_tiles_pattern(pattern, keys)
    with h5py.File(tmp_path / "tiles.h5", "a") as f:
        f["scan/tile_1_2"] = synthetic.tiles[(1, 2)]
    with pytest.raises(TileError, match=r"tile_2_0 \(row 2, col 0\) has shape \(64, 81\)"):
        open_tiles_pattern(pattern, keys)
    with pytest.raises(TileNotFoundError, match=r"missing\.h5 does not exist"):
        open_tiles_pattern(str(tmp_path / "missing.h5:/t_{row}_{col}"), keys)
    with h5py.File(tmp_path / "tiles.h5", "a") as f:
        f.create_group("groups/t_0_0")
    with pytest.raises(TileError, match=r"tiles.h5:/groups/t_0_0 is a group, not a dataset"):
        open_tiles_pattern(str(tmp_path / "tiles.h5:/groups/t_{row}_{col}"), [(0, 0)])


def test_the_command_line_names_a_missing_dataset(tmp_path, synthetic):
    pattern = _into_one_file(synthetic, tmp_path / "tiles.h5")
    with h5py.File(tmp_path / "tiles.h5", "a") as f:
        del f["scan/tile_0_1"]
    proc = run(
        "stitch", "--tiles", pattern, "--positions", synthetic.positions_csv,
        "--out", tmp_path / "m.h5",
    )  # fmt: skip
    line = one_line_error(proc)
    assert "tiles.h5:/scan/tile_0_1" in line and "has no dataset" in line
    assert not (tmp_path / "m.h5").exists()
