"""Fusion against known answers and against the single-process NumPy reference."""

import h5py
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazystitch.fusion import fuse
from lazystitch.io import open_tiles, open_tiles_pattern
from lazystitch.layout import Layout, grid_layout, positions_from_csv
from lazystitch.testing import make_tiles, reference_stitch
from lazystitch.writers import write_hdf5

BLENDS = ["linear", "average", "max", "first", "last"]


def _two_tiles(tmp_path, left, right, overlap):
    """Two 1-row tiles side by side, overlapping by ``overlap`` px."""
    paths = {}
    for key, arr in (((0, 0), left), ((0, 1), right)):
        paths[key] = tmp_path / f"t{key[1]}.tif"
        tifffile.imwrite(paths[key], arr)
    ts = open_tiles(paths)
    return ts, grid_layout(1, 2, ts.tile_yx, (0, overlap))


def test_linear_is_a_ramp_across_the_overlap_and_weights_sum_to_one(tmp_path):
    left = np.full((4, 10), 0.0, np.float32)
    right = np.full((4, 10), 100.0, np.float32)
    ts, lay = _two_tiles(tmp_path, left, right, 4)
    out = fuse(ts, lay, blend="linear").compute(scheduler="sync")
    assert out.shape == (4, 16)
    # outside the overlap: the tile's own values
    np.testing.assert_array_equal(out[:, :6], 0)
    np.testing.assert_array_equal(out[:, 10:], 100)
    # across the overlap: rising linearly (k+1)/(o+1), identical on every row
    expected = 100 * np.arange(1, 5) / 5
    np.testing.assert_allclose(out[:, 6:10], np.broadcast_to(expected, (4, 4)), rtol=1e-6)


def test_constant_tiles_stay_constant_under_every_blend(tmp_path):
    arr = np.full((8, 12), 1234, np.uint16)
    ts, lay = _two_tiles(tmp_path, arr, arr, 5)
    for blend in BLENDS:
        out = fuse(ts, lay, blend=blend).compute(scheduler="sync")
        assert (out == 1234).all(), blend


@pytest.mark.parametrize(
    ("blend", "expected"),
    [("average", 15), ("max", 20), ("first", 10), ("last", 20), ("linear", None)],
)
def test_overlap_known_answers(tmp_path, blend, expected):
    ts, lay = _two_tiles(tmp_path, np.full((3, 6), 10, np.uint8), np.full((3, 6), 20, np.uint8), 2)
    out = fuse(ts, lay, blend=blend).compute(scheduler="sync")
    if expected is None:  # 1/3 and 2/3 of the way: 10*2/3 + 20/3 = 13.33 -> 13, then 16.67 -> 17
        np.testing.assert_array_equal(out[0, 4:6], [13, 17])
    else:
        np.testing.assert_array_equal(out[:, 4:6], expected)


def test_integer_results_round_to_nearest(tmp_path):
    ts, lay = _two_tiles(tmp_path, np.full((2, 4), 1, np.uint8), np.full((2, 4), 2, np.uint8), 2)
    out = fuse(ts, lay, blend="average").compute(scheduler="sync")
    np.testing.assert_array_equal(out[0], [1, 1, 2, 2, 2, 2])  # 1.5 rounds half to even: 2


def _read(path, name="mosaic"):
    with h5py.File(path, "r") as f:
        return f[name][...]


@pytest.mark.parametrize("layout_kind", ["grid", "csv"])
@pytest.mark.parametrize("lead", [(), (3,)], ids=["2d", "zstack"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("blend", BLENDS)
def test_mosaic_equals_reference_through_the_writer(
    tmp_path, client, blend, dtype, lead, layout_kind
):
    s = make_tiles(
        tmp_path / "tiles",
        grid=(3, 4),
        tile_yx=(40, 48),
        overlap=(8, 12),
        jitter=3 if layout_kind == "csv" else 0,
        dtype=dtype,
        lead=lead,
        missing=[(2, 1)] if layout_kind == "csv" else [],
        seed=3,
    )
    ts = open_tiles_pattern(s.pattern, s.positions)
    lay = (
        positions_from_csv(s.positions_csv, ts.tile_yx)
        if layout_kind == "csv"
        else grid_layout(3, 4, ts.tile_yx, (8, 12))
    )
    chunks = (2, 17, 23) if lead else (17, 23)  # do not line up with tiles
    res = write_hdf5(fuse(ts, lay, blend=blend), tmp_path / "m.h5", chunks=chunks)
    got = _read(res.out)
    ref = reference_stitch(s.tiles, s.positions, blend)
    assert got.dtype == np.dtype(dtype) and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)
    # tiles cut from one image reproduce it (+-1 where blending rounds)
    diff = np.abs(got.astype(np.float64) - s.image.astype(np.float64))
    tol = 1e-6 if dtype == "float32" else (0 if blend in ("max", "first", "last") else 1)
    assert diff.max() <= tol


@pytest.mark.parametrize("blend", BLENDS)
def test_worker_count_does_not_change_bytes(tmp_path, any_client, blend):
    s = make_tiles(tmp_path / "t", grid=(2, 3), tile_yx=(30, 30), overlap=7, jitter=2, seed=1)
    ts = open_tiles_pattern(s.pattern, s.positions)
    lay = positions_from_csv(s.positions_csv, ts.tile_yx)
    res = write_hdf5(fuse(ts, lay, blend=blend), tmp_path / "m.h5", chunks=(11, 13))
    np.testing.assert_array_equal(_read(res.out), reference_stitch(s.tiles, s.positions, blend))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.integers(1, 3),
    cols=st.integers(1, 3),
    th=st.integers(6, 20),
    tw=st.integers(6, 20),
    oy_frac=st.floats(0.0, 0.5),
    ox_frac=st.floats(0.0, 0.5),
    jitter_frac=st.floats(0.0, 0.5),
    blend=st.sampled_from(BLENDS),
    dtype=st.sampled_from(["uint8", "uint16", "float32"]),
    drop=st.integers(0, 8),
    cy=st.integers(1, 25),
    cx=st.integers(1, 25),
    seed=st.integers(0, 1000),
)
def test_random_layouts_match_reference(
    tmp_path_factory,
    client,
    rows,
    cols,
    th,
    tw,
    oy_frac,
    ox_frac,
    jitter_frac,
    blend,
    dtype,
    drop,
    cy,
    cx,
    seed,
):
    oy, ox = int(oy_frac * th), int(ox_frac * tw)
    jitter = int(jitter_frac * min(oy, ox) / 2) if min(oy, ox) >= 2 else 0
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    missing = [cells[drop]] if len(cells) > 2 and drop < len(cells) else []
    s = make_tiles(
        tmp_path_factory.mktemp("h"),
        grid=(rows, cols),
        tile_yx=(th, tw),
        overlap=(oy, ox),
        jitter=jitter,
        dtype=dtype,
        missing=missing,
        seed=seed,
    )
    ts = open_tiles_pattern(s.pattern, s.positions)
    lay = positions_from_csv(s.positions_csv, ts.tile_yx)
    # tiles off the grid by at most a quarter of the overlap, any one cell missing: always
    # inside what fusion supports (its refusals are tested on purpose-made layouts below)
    mosaic = fuse(ts, lay, blend=blend)
    got = client.compute(mosaic.rechunk((cy, cx))).result()
    np.testing.assert_array_equal(got, reference_stitch(s.tiles, s.positions, blend))


def test_deviation_of_half_the_overlap_is_supported(tmp_path):
    # overlap 20 px; tiles moved by +-10 px off the grid in both axes
    s = make_tiles(tmp_path, grid=(3, 3), tile_yx=(60, 60), overlap=20, jitter=10, seed=5)
    ts = open_tiles_pattern(s.pattern, s.positions)
    lay = positions_from_csv(s.positions_csv, ts.tile_yx)
    got = fuse(ts, lay, blend="linear").compute(scheduler="sync")
    np.testing.assert_array_equal(got, reference_stitch(s.tiles, s.positions, "linear"))


@pytest.mark.parametrize("blend", BLENDS)
def test_a_tile_far_off_its_grid_place_fuses_where_its_position_puts_it(tmp_path, blend):
    # tile (0, 1) is pushed right past its neighbour (0, 2), over (0, 3): what a grid-based
    # fusion (each tile blended only with its eight grid neighbours) could not do
    rng = np.random.default_rng(3)
    keys = ((0, 0), (0, 1), (0, 2), (0, 3))
    pos = {(0, 0): (0.0, 0.0), (0, 1): (6.0, 250.0), (0, 2): (0.0, 180.0), (0, 3): (3.0, 270.0)}
    tiles, paths = {}, {}
    for k in keys:
        tiles[k] = rng.integers(0, 60000, (40, 100)).astype(np.uint16)
        paths[k] = tmp_path / f"t{k[1]}.tif"
        tifffile.imwrite(paths[k], tiles[k])
    lay = Layout(keys=keys, positions=np.array([pos[k] for k in keys]), tile_yx=(40, 100),
                 kind="positions")  # fmt: skip
    for chunks in [(16, 64), (7, 33), (1024, 1024)]:
        got = fuse(open_tiles(paths), lay, blend=blend, chunks=chunks).compute(scheduler="sync")
        np.testing.assert_array_equal(got, reference_stitch(tiles, pos, blend))


def test_rows_out_of_geometric_order_still_fuse_exactly(tmp_path):
    # row 1 lies above row 0: ownership follows the positions, not the labels
    rng = np.random.default_rng(0)
    tiles = {
        (0, 0): rng.integers(0, 999, (30, 20)).astype(np.uint16),
        (1, 0): rng.integers(0, 999, (30, 20)).astype(np.uint16),
    }
    paths = {}
    for k, arr in tiles.items():
        paths[k] = tmp_path / f"t{k[0]}.tif"
        tifffile.imwrite(paths[k], arr)
    positions = {(0, 0): (24, 3), (1, 0): (0, 0)}
    lay = Layout(
        keys=tuple(positions),
        positions=np.array(list(positions.values()), float),
        tile_yx=(30, 20),
        kind="positions",
    )
    for blend in BLENDS:
        got = fuse(open_tiles(paths), lay, blend=blend).compute(scheduler="sync")
        np.testing.assert_array_equal(got, reference_stitch(tiles, positions, blend))


def test_graph_reads_no_pixels(tmp_path):
    s = make_tiles(tmp_path, grid=(2, 2), tile_yx=(20, 20), overlap=4)
    ts = open_tiles_pattern(s.pattern, s.positions)
    for p in tmp_path.glob("*.tif"):  # destroy the pixels after the header check
        p.write_bytes(p.read_bytes()[:8])
    mosaic = fuse(ts, grid_layout(2, 2, ts.tile_yx, 4))  # building the graph must not read them
    assert mosaic.shape == (36, 36)


@pytest.mark.parametrize("blend", ["linear", "last"])
def test_pixels_no_tile_covers_are_zero_whatever_the_memory_held(tmp_path, blend):
    # the missing middle tile leaves a hole; a block is allocated without zeroing, so its
    # uncovered rectangles must be cleared (freed memory full of non-zero pixels is handed
    # out again in between)
    s = make_tiles(tmp_path, grid=(3, 3), tile_yx=(160, 160), overlap=16, missing=[(1, 1)])
    ts = open_tiles_pattern(s.pattern, s.positions)
    n = 200  # blocks under 128 KiB: taken from the heap (larger ones are fresh, zeroed pages)
    mosaic = fuse(ts, positions_from_csv(s.positions_csv, ts.tile_yx), blend=blend, chunks=(n, n))
    want = reference_stitch(s.tiles, s.positions, blend)
    assert (want[160:288, 160:288] == 0).all()  # the hole is there
    for i in range(mosaic.numblocks[0]):
        for j in range(mosaic.numblocks[1]):
            block = mosaic.blocks[i, j]
            garbage = [np.full(block.shape, 0xABCD, block.dtype) for _ in range(8)]
            del garbage
            got = block.compute(scheduler="sync")
            np.testing.assert_array_equal(got, want[i * n : (i + 1) * n, j * n : (j + 1) * n])


@pytest.mark.parametrize("sub_pixel", [False, True], ids=["whole", "sub-pixel"])
@pytest.mark.parametrize("lead", [(), (2,)], ids=["2d", "zstack"])
@pytest.mark.parametrize("blend", ["linear", "average"])
def test_tiles_large_enough_to_blend_rectangle_by_rectangle_equal_the_reference(
    tmp_path, blend, lead, sub_pixel
):
    """Tiles this size cut a block into few large rectangles (blended one rectangle at a
    time, not the whole block), where three or four tiles overlap at the corners."""
    s = make_tiles(
        tmp_path, grid=(2, 3), tile_yx=(200, 180), overlap=(40, 50), jitter=6, lead=lead, seed=4
    )
    positions = dict(s.positions)
    if sub_pixel:
        rng = np.random.default_rng(2)
        positions = {
            k: (y + rng.uniform(0, 1), x + rng.uniform(0, 1)) for k, (y, x) in positions.items()
        }
    from lazystitch.testing import write_positions_csv

    tiles = open_tiles_pattern(s.pattern, s.positions)
    lay = positions_from_csv(write_positions_csv(tmp_path / "p.csv", positions), tiles.tile_yx)
    got = fuse(tiles, lay, blend=blend, chunks=(256, 256)).compute(scheduler="sync")
    np.testing.assert_array_equal(got, reference_stitch(s.tiles, positions, blend))
