"""OME-TIFF tiles: pixel size, channel names and stage positions from their OME-XML, and a
mosaic placed by the stage positions alone (--positions metadata)."""

import numpy as np
import pytest
import tifffile

from lazystitch.io import tiff_source
from lazystitch.testing import make_tiles, reference_stitch

from ..test_cli import _read, one_line_error, run
from ._by_metadata import stitch_by_metadata

PX_UM = 0.325


def _write_ome(path, tile, y_um, x_um, unit="µm", size_um=PX_UM, **extra):
    tifffile.imwrite(
        path,
        tile,
        metadata={
            "axes": "YX",
            "PhysicalSizeX": size_um,
            "PhysicalSizeY": size_um,
            "Plane": {
                "PositionX": [x_um], "PositionY": [y_um],
                "PositionXUnit": [unit], "PositionYUnit": [unit],
            },
            **extra,
        },
    )  # fmt: skip


@pytest.fixture
def acquisition(tmp_path):
    """3 x 3 tiles cut at jittered places, saved as Pos000..Pos008.ome.tif with their stage
    positions in µm (an arbitrary stage origin) and no other record of where they go."""
    s = make_tiles(
        tmp_path / "cut", grid=(3, 3), tile_yx=(64, 80), overlap=(12, 16), jitter=4, seed=12
    )
    folder = tmp_path / "ome"
    folder.mkdir()
    for i, (key, (y, x)) in enumerate(sorted(s.positions.items())):
        _write_ome(folder / f"Pos{i:03d}.ome.tif", s.tiles[key], 5000 + y * PX_UM, -300 + x * PX_UM)
    return s, folder


def test_stage_positions_in_um_place_the_tiles_exactly(tmp_path, acquisition):
    s, folder = acquisition
    want = reference_stitch(s.tiles, s.positions, "linear")  # the pixel size from the files
    stitch_by_metadata(folder / "Pos{index:03d}.ome.tif", tmp_path / "m.h5", want, PX_UM, 1)


def test_a_positions_csv_in_um_matches_one_in_pixels(tmp_path, acquisition):
    s, _ = acquisition
    csv = tmp_path / "um.csv"
    csv.write_text(
        "row,col,y,x\n"
        + "".join(f"{r},{c},{y * PX_UM},{x * PX_UM}\n" for (r, c), (y, x) in s.positions.items())
    )
    outs = []
    for name, extra in (
        ("um", ["--positions", csv, "--positions-unit", "um", "--pixel-size", PX_UM]),
        ("px", ["--positions", s.positions_csv]),
    ):
        out = tmp_path / f"{name}.h5"
        proc = run("stitch", "--tiles", s.pattern, *extra, "--out", out, "--workers", "1")
        assert proc.returncode == 0, proc.stderr
        outs.append(_read(out))
    np.testing.assert_array_equal(outs[0], outs[1])
    proc = run(
        "stitch",
        "--tiles",
        s.pattern,
        "--positions",
        csv,
        "--positions-unit",
        "um",
        "--out",
        tmp_path / "x.h5",
    )  # plain TIFFs: no pixel size to convert with
    assert "tiles.pixel_size" in one_line_error(proc) and "--pixel-size" in one_line_error(proc)


def test_units_channels_and_pixel_size_are_read(tmp_path):
    path = tmp_path / "t.ome.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 16, 24), np.uint16),
        metadata={
            "axes": "CYX", "PhysicalSizeX": 650, "PhysicalSizeY": 650,
            "PhysicalSizeXUnit": "nm", "PhysicalSizeYUnit": "nm",
            "Channel": {"Name": ["DAPI", "GFP"]},
            "Plane": {"PositionX": [1.5, 1.5], "PositionY": [-2.0, -2.0],
                      "PositionXUnit": ["mm"] * 2, "PositionYUnit": ["mm"] * 2},
        },
    )  # fmt: skip
    src = tiff_source(path)
    assert src.axes == "cyx" and src.channels == ("DAPI", "GFP")
    assert src.pixel_size == pytest.approx((0.65, 0.65))
    assert src.position == pytest.approx((-2000.0, 1500.0))


def test_positions_without_a_physical_unit_are_refused(tmp_path, acquisition):
    s, folder = acquisition
    tile = s.tiles[(0, 0)]
    _write_ome(folder / "Pos004.ome.tif", tile, 10.0, 20.0, unit="reference frame")
    assert tiff_source(folder / "Pos004.ome.tif").position is None
    proc = run("stitch", "--tiles", folder / "Pos{index:03d}.ome.tif", "--positions", "metadata",
               "--out", tmp_path / "m.h5")  # fmt: skip
    line = one_line_error(proc)
    assert "Pos004.ome.tif has no stage position in physical units" in line
    assert "reference frame" in line and not (tmp_path / "m.h5").exists()


def test_metadata_positions_need_files_that_match(tmp_path):
    proc = run("stitch", "--tiles", tmp_path / "Pos{index:03d}.ome.tif", "--positions", "metadata",
               "--out", tmp_path / "m.h5")  # fmt: skip
    assert "matches no file" in one_line_error(proc)
