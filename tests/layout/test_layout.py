import numpy as np
import pytest

from lazystitch.errors import ConfigError, LayoutError
from lazystitch.layout import grid_layout, overlap_px, positions_from_csv, read_positions_csv


def test_grid_positions_fraction_and_px():
    lay = grid_layout(2, 3, (100, 200), (0.1, 20))
    assert lay.description["overlap_px"] == [10, 20]
    np.testing.assert_array_equal(lay.positions[4], [90, 180])
    assert lay.mosaic_yx == (190, 560)


@pytest.mark.parametrize(
    ("overlap", "message"),
    [(-1, ">= 0"), (100, "tiles are only"), ((0.1, 0.2, 0.3), "one value or two")],
)
def test_bad_overlap(overlap, message):
    with pytest.raises(ConfigError, match=message):
        overlap_px(overlap, (100, 100))


def test_csv_origin_is_minimum_and_floats_are_whole_plus_fraction(tmp_path):
    p = tmp_path / "pos.csv"
    p.write_text("row,col,y,x,score\n0,0,-5.4,10.6,1\n0,1,-3,100,1\n1,1,85.5,99.2,1\n")
    lay = positions_from_csv(p, (100, 100))
    assert lay.origin == (-6, 10)
    np.testing.assert_array_equal(lay.pixel_positions, [[0, 0], [3, 90], [91, 89]])
    np.testing.assert_allclose(lay.fractions, [[0.6, 0.6], [0, 0], [0.5, 0.2]], atol=1e-9)
    assert lay.mosaic_yx == (191, 190)
    assert lay.keys == ((0, 0), (0, 1), (1, 1))  # missing cell (1, 0) allowed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("r,c,y,x\n0,0,1,1\n", r"missing \['row', 'col'\]"),
        ("row,col,y,x\n0,0,1,abc\n", "line 2: expected integers"),
        ("row,col,y,x\n0,0,1,1\n0,0,2,2\n", "line 3: tile row=0 col=0 already given on line 2"),
        ("row,col,y,x\n", "lists no tiles"),
        ("row,col,y,x\n-1,0,0,0\n", "row/col must be >= 0"),
        ("row,col,y,x\n0,0,nan,0\n", "finite"),
    ],
)
def test_bad_csv_is_named(tmp_path, text, message):
    p = tmp_path / "pos.csv"
    p.write_text(text)
    with pytest.raises(ConfigError, match=r"pos\.csv.*" + message):
        read_positions_csv(p)


def test_layout_rejects_duplicate_keys():
    from lazystitch.layout import Layout

    with pytest.raises(LayoutError, match="same"):
        Layout(keys=((0, 0), (0, 0)), positions=np.zeros((2, 2)), tile_yx=(4, 4), kind="grid")
