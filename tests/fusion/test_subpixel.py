"""Sub-pixel placement: tiles between pixels are interpolated inside the block function."""

import numpy as np
import pytest

from lazystitch.fusion import fuse
from lazystitch.io import open_tiles_pattern
from lazystitch.layout import Layout, positions_from_csv
from lazystitch.testing import (
    make_tiles,
    reference_stitch,
    write_positions_csv,
)

BLENDS = ["linear", "average", "max", "first", "last"]


@pytest.mark.parametrize("lead", [(), (2,)], ids=["2d", "zstack"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "float64"])
@pytest.mark.parametrize("blend", BLENDS)
def test_fractional_positions_equal_the_reference(tmp_path, client, blend, dtype, lead):
    s = make_tiles(
        tmp_path,
        grid=(3, 3),
        tile_yx=(40, 44),
        overlap=(10, 12),
        jitter=2,
        dtype=dtype,
        lead=lead,
        seed=9,
    )
    rng = np.random.default_rng(1)
    positions = {
        k: (y + rng.uniform(0, 1), x + rng.uniform(0, 1)) for k, (y, x) in s.positions.items()
    }
    positions[(1, 1)] = s.positions[(1, 1)]  # one whole-pixel tile among them
    csv = write_positions_csv(tmp_path / "frac.csv", positions)
    tiles = open_tiles_pattern(s.pattern, s.positions)
    mosaic = fuse(tiles, positions_from_csv(csv, tiles.tile_yx), blend=blend)
    got = client.compute(mosaic.rechunk((23, 17) if not lead else (1, 23, 17))).result()
    want = reference_stitch(s.tiles, positions, blend)
    if dtype == "float64":  # the oracle interpolates with scipy: equal up to float rounding
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_array_equal(got, want)


def test_subpixel_placement_reproduces_the_source_better_than_rounding(tmp_path):
    import tifffile

    def image(y, x):  # smooth, so that interpolation error is small next to placement error
        return np.sin(y / 4.0) * np.cos(x / 5.0) + 0.5 * np.sin((x + y) / 7.0)

    h = w = 64
    rng = np.random.default_rng(3)
    exact = {
        (r, c): (r * 52 + rng.uniform(0, 3), c * 52 + rng.uniform(0, 3))
        for r in range(2)
        for c in range(3)
    }
    for (r, c), (y, x) in exact.items():
        yy, xx = np.mgrid[0:h, 0:w]
        tifffile.imwrite(tmp_path / f"t_{r}_{c}.tif", image(yy + y, xx + x).astype(np.float32))
    tiles = open_tiles_pattern(str(tmp_path / "t_{row}_{col}.tif"), exact)
    keys = tuple(sorted(exact))
    errors = {}
    for name, pos in (
        ("subpixel", np.array([exact[k] for k in keys])),
        ("rounded", np.rint([exact[k] for k in keys])),
    ):
        lay = Layout(keys=keys, positions=pos, tile_yx=tiles.tile_yx, kind="positions")
        got = fuse(tiles, lay, blend="linear").compute(scheduler="sync").astype(np.float64)
        y0, x0 = np.floor(pos.min(axis=0))
        yy, xx = np.mgrid[0 : got.shape[0], 0 : got.shape[1]]
        covered = got != 0
        errors[name] = np.sqrt(np.mean((got - image(yy + y0, xx + x0))[covered] ** 2))
    assert errors["subpixel"] < 0.2 * errors["rounded"], errors
