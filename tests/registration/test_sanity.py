"""A mixed-up grid is detected and the fix named, instead of a scrambled mosaic."""

import shutil

import pytest

from lazystitch.errors import LayoutError
from lazystitch.io import open_tiles_pattern
from lazystitch.layout import grid_layout
from lazystitch.registration import register
from lazystitch.testing import make_registration_tiles

MIXUPS = {
    "as acquired": (lambda r, c, R, C: (r, c), None),
    "mirrored columns": (lambda r, c, R, C: (r, C - 1 - c), "columns are mirrored"),
    "mirrored rows": (lambda r, c, R, C: (R - 1 - r, c), "rows are mirrored"),
    "snake": (lambda r, c, R, C: (r, C - 1 - c) if r % 2 else (r, c), "--order snake-row"),
    "swapped": (lambda r, c, R, C: (c, r), "rows and columns are swapped"),
}


@pytest.fixture(scope="module")
def acquired(tmp_path_factory):
    return make_registration_tiles(
        tmp_path_factory.mktemp("acq"),
        grid=(3, 3),
        tile_yx=(256, 256),
        overlap=0.15,
        jitter=4,
        seed=5,
        vignetting=0.1,
    )


@pytest.mark.parametrize("mixup", list(MIXUPS))
def test_mixed_up_grids_are_named(tmp_path, client, acquired, mixup):
    perm, expected = MIXUPS[mixup]
    for r in range(3):
        for c in range(3):  # the file named perm(r, c) holds the tile imaged at (r, c)
            pr, pc = perm(r, c, 3, 3)
            shutil.copy(acquired.pattern.format(row=r, col=c), tmp_path / f"t_{pr}_{pc}.tif")
    tiles = open_tiles_pattern(str(tmp_path / "t_{row}_{col}.tif"), acquired.true_positions)
    layout = grid_layout(3, 3, tiles.tile_yx, acquired.overlap_px)
    if expected is None:
        reg = register(tiles, layout, max_shift=15)
        assert set(reg.labels.values()) == {"registered"}
    else:
        with pytest.raises(LayoutError, match=r"layout looks wrong.*" + expected):
            register(tiles, layout, max_shift=15)


def test_report_has_a_plot(tmp_path, client, acquired):
    tiles = open_tiles_pattern(acquired.pattern, acquired.true_positions)
    reg = register(tiles, grid_layout(3, 3, tiles.tile_yx, acquired.overlap_px), max_shift=15)
    reg.write_report(tmp_path)
    png = (tmp_path / "registration.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
