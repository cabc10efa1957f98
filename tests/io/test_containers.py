"""Every tile of one container ('*'): a multi-series OME-TIFF placed by its stage positions, the
datasets of an HDF5 group and the arrays of a Zarr group numbered like {index}; and stage
metadata whose axes are turned, caught by registration's layout check."""

import csv

import h5py
import numpy as np
import pytest
import skimage.data
import tifffile
import zarr

from lazystitch.io import open_tiles_pattern
from lazystitch.testing import (
    check_tile_set,
    make_registration_tiles,
    make_tiles,
    reference_stitch,
)

from ..test_cli import _read, one_line_error, run
from ._by_metadata import stitch_by_metadata

PX_UM = 0.5


def _multi_series(path, tiles, positions_um):
    """One OME-TIFF, one image series per tile, each with its stage position in µm."""
    with tifffile.TiffWriter(path, ome=True) as tw:
        for key in sorted(tiles):
            y, x = positions_um[key]
            tw.write(tiles[key], metadata={
                "axes": "YX", "PhysicalSizeX": PX_UM, "PhysicalSizeY": PX_UM,
                "Plane": {"PositionX": [x], "PositionY": [y],
                          "PositionXUnit": ["µm"], "PositionYUnit": ["µm"]},
            })  # fmt: skip


@pytest.fixture
def synthetic(tmp_path):
    return make_tiles(
        tmp_path / "tiff", grid=(3, 4), tile_yx=(64, 80), overlap=(12, 16), jitter=4, seed=9
    )


def test_a_multi_series_ome_tiff_is_stitched_by_its_stage_positions(tmp_path, synthetic):
    s = synthetic
    um = {k: (300 + y * PX_UM, 1000 + x * PX_UM) for k, (y, x) in s.positions.items()}
    _multi_series(tmp_path / "scan.ome.tif", s.tiles, um)
    pattern = f"{tmp_path / 'scan.ome.tif'}:*"
    tiles = open_tiles_pattern(pattern, [(0, i) for i in range(12)])
    by_order = {(0, i): s.tiles[k] for i, k in enumerate(sorted(s.tiles))}
    check_tile_set(tiles, expected=by_order)
    out = tmp_path / "m.h5"
    stitch_by_metadata(pattern, out, reference_stitch(s.tiles, s.positions), PX_UM)
    with h5py.File(out) as f:  # the rows and columns came back from the positions
        assert f["mosaic"].attrs["tile_grid"].tolist() == [list(k) for k in sorted(s.tiles)]


def test_every_dataset_of_a_group_and_every_array_of_a_zarr_group(tmp_path, synthetic):
    s = synthetic
    order = sorted(s.tiles)  # numbered row by row, as {index} numbers them
    with h5py.File(tmp_path / "t.h5", "w") as f:
        for i, k in enumerate(order):
            f[f"scan/tile{i}"] = s.tiles[k]  # names sort as numbers: tile2 before tile10
        f["other/not_a_tile"] = np.zeros(3)
    root = zarr.open_group(str(tmp_path / "t.zarr"), mode="w")
    for i, k in enumerate(order):
        root.create_array(f"scan/{i}", data=s.tiles[k], chunks=(32, 40))
    want = reference_stitch(s.tiles, s.positions)
    for pattern in (f"{tmp_path / 't.h5'}:/scan/*", f"{tmp_path / 't.zarr'}/scan/*"):
        out = tmp_path / "m.h5"
        proc = run("stitch", "--tiles", pattern, "--positions", s.positions_csv,
                   "--out", out, "--overwrite", "--workers", "1")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_array_equal(_read(out), want)
    line = one_line_error(run("stitch", "--tiles", f"{tmp_path / 't.h5'}:/scan/*", "--grid",
                              "4x4", "--overlap", "12,16", "--out", tmp_path / "x.h5"))  # fmt: skip
    assert "holds 12 tiles" in line and "needs 16" in line
    line = one_line_error(run("stitch", "--tiles", f"{tmp_path / 't.h5'}:/none/*", "--grid",
                              "1x1", "--overlap", "0", "--out", tmp_path / "x.h5"))  # fmt: skip
    assert "no group /none" in line


@pytest.mark.parametrize(
    ("turn", "fix"), [("flip_y", "--flip-y"), ("swap", "--swap-xy")], ids=["y up", "swapped"]
)
def test_turned_stage_axes_in_the_metadata_are_caught_and_named(tmp_path, turn, fix):
    image = skimage.data.camera().astype(np.float64)
    s = make_registration_tiles(tmp_path / "t", grid=(3, 3), tile_yx=(160, 176), jitter=5,
                                image=image)  # fmt: skip
    h, w = s.tile_yx
    oy, ox = s.overlap_px
    tiles, um = {}, {}
    for r, c in s.true_positions:  # the stage's nominal grid, in µm, turned
        tiles[(r, c)] = tifffile.imread(s.pattern.format(row=r, col=c))
        y, x = r * (h - oy) * PX_UM, c * (w - ox) * PX_UM
        um[(r, c)] = (-y, x) if turn == "flip_y" else (x, y)
    _multi_series(tmp_path / "scan.ome.tif", tiles, um)
    pattern = f"{tmp_path / 'scan.ome.tif'}:*"
    args = ["register", "--tiles", pattern, "--positions", "metadata", "--workers", "2"]
    proc = run(*args, "--out", tmp_path / "a.csv")
    assert proc.returncode == 1, proc.stderr
    assert "layout looks wrong" in proc.stderr and fix in proc.stderr
    assert not (tmp_path / "a.csv").exists()
    proc = run(*args, fix, "--out", tmp_path / "b.csv")
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "b.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 9


def test_a_series_of_another_shape_is_named(tmp_path, synthetic):
    s = synthetic
    tiles = dict(s.tiles)
    odd = sorted(tiles)[5]
    tiles[odd] = tiles[odd][:-4]  # four rows short
    um = {k: (y * PX_UM, x * PX_UM) for k, (y, x) in s.positions.items()}
    _multi_series(tmp_path / "scan.ome.tif", tiles, um)
    line = one_line_error(run("stitch", "--tiles", f"{tmp_path / 'scan.ome.tif'}:*",
                              "--positions", "metadata", "--out", tmp_path / "m.h5"))  # fmt: skip
    assert "scan.ome.tif series 5" in line and "(60, 80)" in line and "(64, 80)" in line
