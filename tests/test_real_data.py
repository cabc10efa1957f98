"""Real tiles (NIST MIST phase contrast, exact ground truth) through the whole pipeline."""

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from lazystitch import stitch
from lazystitch.io import tile_paths

MIST = Path(__file__).parent / "data" / "mist_phase_5x5"
PATTERN = str(MIST / "tiles" / "ImageName_t01_p{index:02d}.tif")


def _ground_truth(tmp_path):
    """The ground truth as a lazystitch positions CSV, and tiles keyed by (row, col)."""
    rows = list(csv.DictReader((MIST / "ground_truth_positions.csv").read_text().splitlines()))
    out = tmp_path / "gt.csv"
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "col", "y", "x"])
        for r in rows:
            w.writerow([r["row"], r["col"], r["y"], r["x"]])
    tiles = {
        (int(r["row"]), int(r["col"])): tifffile.imread(MIST / "tiles" / r["file"]) for r in rows
    }
    pos = {(int(r["row"]), int(r["col"])): (int(r["y"]), int(r["x"])) for r in rows}
    return out, tiles, pos


def test_column_major_index_names_the_mist_files():
    paths = tile_paths(
        PATTERN, [(0, 0), (4, 0), (0, 1), (4, 4)], rows=5, cols=5, start=1, order="column"
    )
    assert [p.name for p in paths.values()] == [
        "ImageName_t01_p01.tif",
        "ImageName_t01_p05.tif",
        "ImageName_t01_p06.tif",
        "ImageName_t01_p25.tif",
    ]


@pytest.mark.parametrize("blend", ["linear", "average", "max", "first", "last"])
def test_real_tiles_at_ground_truth_paste_exactly(tmp_path, client, blend):
    gt_csv, tiles, pos = _ground_truth(tmp_path)
    res = stitch(
        {
            "tiles": {"pattern": PATTERN, "start": 1, "order": "column"},
            "layout": {"positions": str(gt_csv)},
            "fusion": {"blend": blend},
            "output": {"path": str(tmp_path / "m.h5"), "chunks": (97, 131), "compression": "gzip"},
        }
    )
    with h5py.File(res.out) as f:
        mosaic = f["mosaic"][...]
    assert mosaic.shape == (888, 1188)  # the ground truth's extent
    # overlaps are identical copies, so every blend must give back every tile, pixel for pixel
    for key, tile in tiles.items():
        y, x = pos[key]
        np.testing.assert_array_equal(mosaic[y : y + 183, x : x + 245], tile, err_msg=str(key))
