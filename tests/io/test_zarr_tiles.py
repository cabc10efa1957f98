"""Tiles held in Zarr: arrays of a group (Zarr v2 and v3), and one OME-Zarr image per tile
(OME-NGFF 0.4 on Zarr v2, 0.5 on v3) placed by its own scale and translation."""

import numpy as np
import pytest
import zarr

from lazystitch.errors import TileError, TileNotFoundError
from lazystitch.io import open_tiles_pattern, zarr_source
from lazystitch.testing import check_tile_set, make_tiles, reference_stitch

from ..test_cli import _read, one_line_error, run
from ._by_metadata import stitch_by_metadata

PX_UM = 0.65


@pytest.fixture
def synthetic(tmp_path):
    return make_tiles(
        tmp_path / "tiff", grid=(3, 3), tile_yx=(64, 80), overlap=(10, 16), jitter=4, seed=8
    )


def _group_store(s, path, fmt):
    root = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    for (r, c), tile in s.tiles.items():
        root.create_array(f"scan/tile_{r}_{c}", data=tile, chunks=(24, 32))
    return f"{path}/scan/tile_{{row}}_{{col}}"


@pytest.mark.parametrize("fmt", [2, 3], ids=["zarr-v2", "zarr-v3"])
def test_zarr_group_arrays_pass_the_conformance_check_and_reproduce_the_tiff_mosaic(
    tmp_path, synthetic, fmt
):
    s = synthetic
    pattern = _group_store(s, tmp_path / "tiles.zarr", fmt)
    tiles = open_tiles_pattern(pattern, s.positions)
    assert tiles.axes == "yx" and tiles.paths == [tmp_path / "tiles.zarr"]
    check_tile_set(tiles, expected=s.tiles)
    out = tmp_path / "m.h5"
    proc = run("stitch", "--tiles", pattern, "--positions", s.positions_csv, "--out", out,
               "--workers", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(_read(out), reference_stitch(s.tiles, s.positions))


def _ome_zarr(path, tile, y_um, x_um, version):
    fmt = 2 if version == "0.4" else 3
    g = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    g.create_array("0", data=tile, chunks=(32, 40))
    image = {
        "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "yx"],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [PX_UM, PX_UM]},
            {"type": "translation", "translation": [y_um, x_um]},
        ]}],
    }  # fmt: skip
    if version == "0.4":
        g.attrs["multiscales"] = [{"version": "0.4", **image}]
    else:
        g.attrs["ome"] = {"version": "0.5", "multiscales": [image]}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_ome_zarr_per_tile_is_placed_by_its_translation(tmp_path, synthetic, version):
    s = synthetic
    folder = tmp_path / "ome"
    folder.mkdir()
    for (r, c), (y, x) in s.positions.items():
        _ome_zarr(folder / f"tile_{r}_{c}.ome.zarr", s.tiles[(r, c)], 120 + y * PX_UM,
                  -40 + x * PX_UM, version)  # fmt: skip
    pattern = folder / "tile_{row}_{col}.ome.zarr"
    tiles = open_tiles_pattern(pattern, s.positions)
    assert tiles.pixel_size_yx == (PX_UM, PX_UM)
    check_tile_set(tiles, expected=s.tiles)
    want = reference_stitch(s.tiles, s.positions)
    stitch_by_metadata(pattern, tmp_path / "m.h5", want, PX_UM, workers=1)


def test_bad_zarr_tiles_are_named(tmp_path, synthetic):
    s = synthetic
    pattern = _group_store(s, tmp_path / "tiles.zarr", 3)
    with pytest.raises(TileNotFoundError, match=r"tiles\.zarr.*tile_5_5"):
        open_tiles_pattern(pattern, [(5, 5)])
    with pytest.raises(TileError, match="is a Zarr group, not an array"):
        zarr_source(tmp_path / "tiles.zarr", "scan")
    with pytest.raises(TileNotFoundError, match=r"nowhere\.zarr does not exist"):
        open_tiles_pattern(str(tmp_path / "nowhere.zarr/t_{row}_{col}"), [(0, 0)])
    line = one_line_error(run("stitch", "--tiles", tmp_path / "tiles.zarr/scan/t_{row}_{col}",
                              "--grid", "1x1", "--overlap", "0", "--out", tmp_path / "m.h5"))  # fmt: skip
    assert "t_0_0" in line and "tiles.zarr" in line


def test_tiles_that_all_record_one_stage_position_are_refused(tmp_path, synthetic):
    folder = tmp_path / "ome"
    folder.mkdir()
    for (r, c), tile in synthetic.tiles.items():  # an exporter that wrote no real positions
        _ome_zarr(folder / f"tile_{r}_{c}.ome.zarr", tile, 0.0, 0.0, "0.5")
    line = one_line_error(run("stitch", "--tiles", folder / "tile_{row}_{col}.ome.zarr",
                              "--positions", "metadata", "--out", tmp_path / "m.h5"))  # fmt: skip
    assert "one stage position" in line and "--positions FILE.csv" in line
    assert not (tmp_path / "m.h5").exists()
