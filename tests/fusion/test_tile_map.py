"""The tile map against an oracle of its own (each tile's footprint and edge distances, pixel by
pixel, with NumPy), and against the fused mosaic it describes."""

import numpy as np
import pytest
import tifffile

from lazystitch.fusion import fuse, plan_fusion, tile_map_graph
from lazystitch.io import open_tiles_pattern
from lazystitch.layout import positions_from_csv, positions_layout
from lazystitch.testing import make_tiles


def oracle_tile_map(positions, tile_yx, blend):
    """Label n (the n-th tile in (row, col) order) per pixel of the mosaic; 0 where no tile.

    linear / average / max: the tile whose pixel is farthest from its edges (the product of
    the distances, counted from 1), the earlier tile on a tie; first / last: the first / last
    tile in (row, col) order that covers the pixel."""
    keys = sorted(positions)
    y_min = min(p[0] for p in positions.values())
    x_min = min(p[1] for p in positions.values())
    h, w = tile_yx
    shape = (
        max(p[0] for p in positions.values()) - y_min + h,
        max(p[1] for p in positions.values()) - x_min + w,
    )
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    labels = np.zeros(shape, np.int64)
    best = np.zeros(shape)
    for n, key in enumerate(keys, 1):
        y0, x0 = positions[key][0] - y_min, positions[key][1] - x_min
        inside = (ys >= y0) & (ys < y0 + h) & (xs >= x0) & (xs < x0 + w)
        dist = np.minimum(ys - y0 + 1, y0 + h - ys) * np.minimum(xs - x0 + 1, x0 + w - xs)
        if blend == "last":
            take = inside
        elif blend == "first":
            take = inside & (labels == 0)
        else:
            take = inside & (dist > best)
        labels[take] = n
        best[take] = dist[take]
    return labels


@pytest.fixture(scope="module")
def jittered(tmp_path_factory):
    """3 x 4 tiles of 61 x 83 px, odd overlaps, +-6 px of jitter: footprints of every shape."""
    s = make_tiles(
        tmp_path_factory.mktemp("tm"), grid=(3, 4), tile_yx=(61, 83), overlap=(13, 17),
        jitter=6, seed=4,
    )  # fmt: skip
    tiles = open_tiles_pattern(s.pattern, s.positions)
    return s, tiles, positions_from_csv(s.positions_csv, tiles.tile_yx)


@pytest.mark.parametrize("blend", ["linear", "average", "max", "first", "last"])
@pytest.mark.parametrize("block", [(37, 53), (512, 512)], ids=["small-blocks", "one-block"])
def test_tile_map_equals_the_footprint_oracle(jittered, blend, block):
    s, _, layout = jittered
    tm = tile_map_graph(plan_fusion(layout), blend=blend, chunks=block)
    got = tm.labels.to_array().compute(scheduler="sync")
    want = oracle_tile_map(s.positions, s.tile_yx, blend)
    assert got.dtype == np.uint8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert set(np.unique(got)) - {0} == set(range(1, 13))  # every tile owns pixels
    assert tm.keys == tuple(sorted(s.positions))  # label n names the n-th tile


@pytest.mark.parametrize("blend", ["linear", "first"])
def test_piles_of_tiles_equal_the_oracle(blend):
    """Tiles scattered at random over a small area, three and more over most pixels, one
    exactly on another (a tie everywhere it covers): the overlaps' own intersections."""
    rng = np.random.default_rng(11)
    keys = [(r, c) for r in range(3) for c in range(4)]
    positions = {k: (int(rng.integers(0, 40)), int(rng.integers(0, 60))) for k in keys}
    positions[(2, 3)] = positions[(1, 1)]
    layout = positions_layout(keys, np.array([positions[k] for k in keys]), (45, 57), "random")
    for block in [(16, 23), (512, 512)]:
        tm = tile_map_graph(plan_fusion(layout), blend=blend, chunks=block)
        got = tm.labels.to_array().compute(scheduler="sync")
        np.testing.assert_array_equal(got, oracle_tile_map(positions, (45, 57), blend))
    assert 12 not in got  # (2, 3) ties with the earlier (1, 1) everywhere


@pytest.mark.parametrize("blend", ["first", "last"])
def test_selecting_blends_take_each_pixel_from_the_tile_the_map_names(tmp_path, blend):
    s = make_tiles(tmp_path, grid=(3, 3), tile_yx=(45, 57), overlap=(11, 14), jitter=4, seed=2)
    own = {}  # tiles that disagree in every overlap: tile n's pixels lie in [1000 n, 1000 n + 999]
    for n, key in enumerate(sorted(s.positions), 1):
        own[key] = (s.tiles[key] % 1000 + 1000 * n).astype(np.uint16)
        tifffile.imwrite(s.pattern.format(row=key[0], col=key[1]), own[key])
    tiles = open_tiles_pattern(s.pattern, s.positions)
    layout = positions_from_csv(s.positions_csv, tiles.tile_yx)
    mosaic = fuse(tiles, layout, blend=blend, chunks=(32, 32)).compute(scheduler="sync")
    labels = tile_map_graph(plan_fusion(layout), blend=blend).labels.to_array().compute()
    y_min = min(p[0] for p in s.positions.values())
    x_min = min(p[1] for p in s.positions.values())
    for n, key in enumerate(sorted(s.positions), 1):
        ys, xs = np.nonzero(labels == n)
        y0, x0 = s.positions[key][0] - y_min, s.positions[key][1] - x_min
        np.testing.assert_array_equal(mosaic[ys, xs], own[key][ys - y0, xs - x0])
    np.testing.assert_array_equal(labels, np.where(mosaic > 0, mosaic // 1000, 0))


def test_a_gap_is_label_zero_and_leading_axes_are_length_one(tmp_path):
    s = make_tiles(tmp_path, grid=(2, 2), tile_yx=(40, 50), overlap=(5, 5), missing=[(1, 1)])
    tiles = open_tiles_pattern(s.pattern, s.positions)
    layout = positions_from_csv(s.positions_csv, tiles.tile_yx)
    tm = tile_map_graph(plan_fusion(layout), lead=2, chunks=(16, 16))
    got = tm.labels.to_array().compute()
    assert got.shape == (1, 1, *layout.mosaic_yx)
    assert tm.keys == ((0, 0), (0, 1), (1, 0))
    assert (got[0, 0, -10:, -10:] == 0).all()  # the missing tile's corner
    np.testing.assert_array_equal(got[0, 0], oracle_tile_map(s.positions, s.tile_yx, "linear"))
