"""A mixed-up grid is detected and the fix named, instead of a scrambled mosaic."""

import shutil

import numpy as np
import pytest

from lazystitch.errors import LayoutError
from lazystitch.io import open_tiles_pattern
from lazystitch.layout import grid_layout, positions_layout
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


# a positions CSV whose stage axes are turned against the image's: (the options that undo it,
# the problem named)
AXIS_MIXUPS = {
    "y flipped": ({"flip_y": True}, r"y axis runs against the image's"),
    "x flipped": ({"flip_x": True}, r"x axis runs against the image's"),
    "y and x exchanged": ({"swap_xy": True}, r"y and x are exchanged"),
    "exchanged, y flipped": ({"swap_xy": True, "flip_y": True}, r"exchanged, and y runs"),
}


def _stage_csv(acquired, undo: dict) -> tuple[list, np.ndarray]:
    """The positions a stage with these axes would have written for the acquired tiles: the
    true positions turned so that ``orient_positions(csv, **undo)`` gives them back."""
    keys = sorted(acquired.true_positions)
    pos = np.array([acquired.true_positions[k] for k in keys], dtype=np.float64)
    pos[:, 0] *= -1 if undo.get("flip_y") else 1  # flips undo themselves ...
    pos[:, 1] *= -1 if undo.get("flip_x") else 1
    if undo.get("swap_xy"):  # ... and the exchange is undone last, having been done first
        pos = pos[:, ::-1]
    return keys, pos + 5000.0  # stage coordinates need not start at 0


@pytest.mark.parametrize("mixup", list(AXIS_MIXUPS))
def test_positions_csv_with_turned_axes_is_named_and_its_fix_registers(
    tmp_path, client, acquired, mixup
):
    undo, problem = AXIS_MIXUPS[mixup]
    keys, stage = _stage_csv(acquired, undo)
    tiles = open_tiles_pattern(acquired.pattern, acquired.true_positions)
    as_given = positions_layout(keys, stage, tiles.tile_yx, "stage.csv")
    flags = " ".join(
        f"--{k.replace('_', '-')}" for k in ("swap_xy", "flip_y", "flip_x") if k in undo
    )
    with pytest.raises(LayoutError, match=r"layout looks wrong.*" + problem) as err:
        register(tiles, as_given, max_shift=15)
    assert f"Fix: run with {flags} (" in str(err.value)
    fixed = positions_layout(keys, stage, tiles.tile_yx, "stage.csv", **undo)
    reg = register(tiles, fixed, max_shift=15)
    assert set(reg.labels.values()) == {"registered"}


def test_a_wrong_fix_already_given_is_named_as_the_options_to_use(tmp_path, client, acquired):
    # the CSV is right as it is; --flip-y given by mistake is what has to go
    keys, stage = _stage_csv(acquired, {})
    tiles = open_tiles_pattern(acquired.pattern, acquired.true_positions)
    wrong = positions_layout(keys, stage, tiles.tile_yx, "stage.csv", flip_y=True)
    with pytest.raises(LayoutError, match="none of --swap-xy, --flip-y, --flip-x") as err:
        register(tiles, wrong, max_shift=15)
    assert "layout.flip_y: false" in str(err.value)
