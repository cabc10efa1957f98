"""A real Zeiss CZI tile scan (multiview-stitcher's test file, tests/data): its tiles, pixel size
and stage positions read through the [czi] extra, registered and stitched from the command line."""

import csv
from pathlib import Path

import h5py
import numpy as np
import tifffile

from lazystitch.io import discover_keys, open_tiles_pattern
from lazystitch.testing import check_tile_set, reference_stitch

from ..test_cli import _read, run

SRC = Path(__file__).parent.parent / "data" / "mvs_mosaic_czi_2tiles"
CZI = SRC / "mosaic_test.czi"
PX_UM = 1.0833333333333333


def _tifs():
    return {(0, i): tifffile.imread(SRC / "tiles" / f"tile_{i}.tif") for i in range(2)}


def test_the_czi_tiles_are_its_subblocks_with_their_stage_positions():
    tiles = open_tiles_pattern(CZI, discover_keys(CZI))
    check_tile_set(tiles, expected=_tifs())  # the pixels of the TIFFs czifile derived
    assert tiles.pixel_size_yx == (PX_UM, PX_UM)
    with open(SRC / "tiles.csv") as fh:
        rows = list(csv.DictReader(fh))
    for src, row in zip(tiles.sources.values(), rows, strict=True):
        assert src.position == (float(row["stage_y_um"]), float(row["stage_x_um"]))


def test_the_czi_registers_within_2px_of_its_reference_and_stitches(tmp_path):
    out_csv = tmp_path / "p.csv"
    proc = run("register", "--tiles", CZI, "--positions", "metadata", "--out", out_csv,
               "--workers", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open(out_csv) as fh:
        pos = {(int(r["row"]), int(r["col"])): (float(r["y"]), float(r["x"]))
               for r in csv.DictReader(fh)}  # fmt: skip
    rel = np.subtract(pos[(0, 1)], pos[(0, 0)])
    assert np.hypot(*(rel - (-1.69, 825.02))) <= 2.0  # SOURCE.md's reference offset

    out = tmp_path / "m.h5"
    proc = run("stitch", "--tiles", CZI, "--positions", "metadata", "--out", out,
               "--workers", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stage = {(0, 0): (0.0, 0.0), (0, 1): (0.0, (59890.011 - 58989.111) / PX_UM)}
    want = reference_stitch(_tifs(), stage).astype(np.int64)
    assert np.abs(_read(out).astype(np.int64) - want).max() <= 1  # a sub-pixel stage step
    with h5py.File(out) as f:
        assert np.allclose(f["mosaic"].attrs["pixel_size_um"], PX_UM)
