"""A BigDataViewer / BigStitcher dataset as tiles: its view setups (written by pybdv, an
independent writer) placed by their registered transforms, channels stacked, uint16 above
32767 intact."""

import numpy as np
import pybdv
import pytest

from lazystitch.io import discover_keys, open_tiles_pattern
from lazystitch.testing import check_tile_set, make_tiles, reference_stitch

from ..test_cli import _read, one_line_error, run
from ._by_metadata import stitch_by_metadata

PX_UM = 0.5


def _bigstitcher(path, tiles, positions, channels=1):
    """One setup per tile and channel; each view a registration translation before the
    calibration, as BigStitcher saves them. The voxels are 0.5 µm in x, y and 0.25 µm in z,
    so the calibration scales x, y by 2 (world units are the smallest voxel side) and the
    translation is in those units: composed in the wrong order, every tile lands at twice
    its place."""
    setup = 0
    for t, key in enumerate(sorted(tiles)):
        y, x = positions[key]
        for c in range(channels):
            data = tiles[key] if c == 0 else (65535 - tiles[key])
            pybdv.make_bdv(
                data[None], str(path.with_suffix(".h5")), setup_id=setup,
                resolution=[PX_UM / 2, PX_UM, PX_UM], unit="micrometer",
                affine={"registration": [1.0, 0.0, 0.0, 2.0 * x, 0.0, 1.0, 0.0, 2.0 * y,
                                         0.0, 0.0, 1.0, 0.0],
                        "calibration": [2.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0,
                                        0.0, 0.0, 1.0, 0.0]},
                attributes={"channel": {"id": c}, "tile": {"id": t},
                            "illumination": {"id": 0}, "angle": {"id": 0}},
            )  # fmt: skip
            setup += 1
    return path.with_suffix(".xml")


@pytest.fixture
def synthetic(tmp_path):
    return make_tiles(
        tmp_path / "tiff", grid=(3, 3), tile_yx=(64, 80), overlap=(12, 16), jitter=4, seed=10
    )


def test_a_bigstitcher_dataset_is_fused_at_its_registered_positions(tmp_path, synthetic):
    s = synthetic
    assert max(int(t.max()) for t in s.tiles.values()) > 32767  # stored as int16 by BDV
    xml = _bigstitcher(tmp_path / "dataset.xml", s.tiles, s.positions)
    tiles = open_tiles_pattern(xml, discover_keys(xml))
    by_order = {(0, i): s.tiles[k] for i, k in enumerate(sorted(s.tiles))}
    check_tile_set(tiles, expected=by_order)
    assert tiles.pixel_size_yx == (PX_UM, PX_UM) and tiles.dtype == np.uint16
    want = reference_stitch(s.tiles, s.positions)
    stitch_by_metadata(xml, tmp_path / "m.h5", want, PX_UM)


def test_the_channels_of_a_tile_are_its_setups_in_channel_order(tmp_path, synthetic):
    s = synthetic
    xml = _bigstitcher(tmp_path / "dataset.xml", s.tiles, s.positions, channels=2)
    out = tmp_path / "m.h5"
    proc = run("stitch", "--tiles", xml, "--positions", "metadata", "--out", out,
               "--workers", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    mosaic = _read(out)
    assert mosaic.shape[0] == 2
    np.testing.assert_array_equal(mosaic[0], reference_stitch(s.tiles, s.positions))
    inverse = {k: 65535 - t for k, t in s.tiles.items()}
    np.testing.assert_array_equal(mosaic[1], reference_stitch(inverse, s.positions))


def test_a_dataset_of_another_image_loader_is_one_line(tmp_path, synthetic):
    s = synthetic
    xml = _bigstitcher(tmp_path / "dataset.xml", s.tiles, s.positions)
    xml.write_text(xml.read_text().replace('format="bdv.hdf5"', 'format="bdv.n5"'))
    line = one_line_error(run("stitch", "--tiles", xml, "--positions", "metadata", "--out",
                              tmp_path / "m.h5"))  # fmt: skip
    assert "dataset.xml" in line and "bdv.n5" in line and "bdv.hdf5" in line
