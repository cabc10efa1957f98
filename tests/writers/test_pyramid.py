"""The multiscale pyramid: every level equals a plain NumPy downsample of the full mosaic.

The oracle below is written from the definition (2x2 block means over Y and X, an odd last row
or column averaging the pixels it has, integers rounded to nearest with halves up) and does
not import lazystitch.
"""

import h5py
import numpy as np
import pytest

from lazystitch.errors import ResumeMismatchError
from lazystitch.fusion import fuse
from lazystitch.io import open_tiles_pattern
from lazystitch.layout import positions_from_csv
from lazystitch.testing import make_tiles, reference_stitch
from lazystitch.writers import describe_output, write_hdf5


def read_levels(path):
    with h5py.File(path, "r") as f:
        names = list(f["mosaic"].attrs["lazystitch_levels"])
        factors = f["mosaic"].attrs["lazystitch_level_factors"].tolist()
        return [f[n][...] for n in names], names, factors


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pyramid")
    return make_tiles(tmp / "tiles", grid=(3, 4), tile_yx=(70, 90), overlap=(14, 16), jitter=4)


def _mosaic(s, blend="linear", blocks=None):
    ts = open_tiles_pattern(s.pattern, s.positions)
    return fuse(ts, positions_from_csv(s.positions_csv, ts.tile_yx), blend=blend, chunks=blocks)


@pytest.mark.parametrize(
    ("chunks", "blocks"),
    [((16, 16), (16, 16)), ((32, 24), (32, 24)), ((16, 16), (32, 32)), ((12, 20), (24, 40)),
     ((16, 16), None), ((13, 29), None), ((7, 7), None)],
    ids=["halves", "halves-rect", "level1-from-blocks", "level1-from-blocks-rect",
         "level1-from-one-block", "odd", "odd-small"],
)  # fmt: skip
def test_every_level_is_the_block_mean_of_the_mosaic(
    oracle_pyramid, tmp_path, any_client, tiles, chunks, blocks
):
    # blocks of the chunks' size: the writing process makes level 1 from level 0's halves;
    # blocks of twice the chunks (as the CLI asks for) or larger: from the blocks themselves;
    # odd chunks: every level from the level above, on the workers
    res = write_hdf5(_mosaic(tiles, blocks=blocks), tmp_path / "m.h5", chunks=chunks)
    levels, names, factors = read_levels(res.out)
    want = oracle_pyramid(reference_stitch(tiles.tiles, tiles.positions), chunks)
    assert names[0] == "mosaic" and names[1:] == [f"mosaic_level{k}" for k in range(1, len(want))]
    assert factors == [[2**k, 2**k] for k in range(len(want))]
    assert len(levels) == len(want) > 2
    for k, (got, ref) in enumerate(zip(levels, want, strict=True)):
        np.testing.assert_array_equal(got, ref, err_msg=f"level {k}")
    assert levels[-1].shape[0] <= chunks[0] and levels[-1].shape[1] <= chunks[1]
    assert (
        res.chunks_written
        == res.chunks_total
        == sum(-(-lv.shape[0] // chunks[0]) * -(-lv.shape[1] // chunks[1]) for lv in want)
    )


def test_levels_n_and_no_pyramid(tmp_path, client, tiles):
    mosaic = _mosaic(tiles)
    levels, _, _ = read_levels(write_hdf5(mosaic, tmp_path / "a.h5", chunks=(16, 16), levels=2).out)
    assert len(levels) == 2
    with h5py.File(write_hdf5(mosaic, tmp_path / "b.h5", chunks=(16, 16), levels=1).out) as f:
        assert list(f) == ["mosaic"]
        assert list(f["mosaic"].attrs["lazystitch_levels"]) == ["mosaic"]
    with pytest.raises(ValueError, match="levels 40 is more than"):
        write_hdf5(mosaic, tmp_path / "c.h5", levels=40)
    assert not (tmp_path / "c.h5").exists()


@pytest.mark.parametrize("dtype", ["uint16", "uint8", "float32", "int16"])
def test_levels_of_other_pixel_types_and_of_z_stacks(oracle_pyramid, tmp_path, client, dtype):
    import dask.array as da

    rng = np.random.default_rng(3)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    if info is not None:
        data = rng.integers(info.min, int(info.max) + 1, size=(3, 101, 77)).astype(dtype)
    else:
        data = rng.normal(100, 40, size=(3, 101, 77)).astype(dtype)
    res = write_hdf5(da.from_array(data, chunks=(1, 40, 50)), tmp_path / "z.h5", chunks=(10, 12))
    levels, _, _ = read_levels(res.out)
    want = oracle_pyramid(data, (10, 12))
    assert [lv.shape for lv in levels] == [w.shape for w in want]
    for got, ref in zip(levels, want, strict=True):
        if info is None:
            np.testing.assert_allclose(got, ref, rtol=1e-6)
        else:
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize(
    ("chunks", "blocks"),
    [((8, 8), (8, 8)), ((8, 8), (16, 16)), ((9, 11), None)],
    ids=["halves", "level1-from-blocks", "pieces"],
)
def test_resume_recomputes_missing_levels_from_the_mosaic_not_the_file(
    oracle_pyramid, stop_after, tmp_path, client, tiles, chunks, blocks
):
    Stop = stop_after.error
    mosaic = _mosaic(tiles, blocks=blocks)
    out = tmp_path / "m.h5"
    with pytest.raises(Stop):
        write_hdf5(mosaic, out, chunks=chunks, progress=stop_after(60), batch_seconds=0)
    info = describe_output(out)
    assert info["state"] == "partial" and info["chunks_written"] > 0
    res = write_hdf5(mosaic, out, chunks=chunks, resume=True)
    assert res.chunks_skipped > 0 and res.chunks_written + res.chunks_skipped == res.chunks_total
    levels, _, _ = read_levels(out)
    want = oracle_pyramid(reference_stitch(tiles.tiles, tiles.positions), chunks)
    for got, ref in zip(levels, want, strict=True):
        np.testing.assert_array_equal(got, ref)
    with pytest.raises(Stop):
        write_hdf5(mosaic, tmp_path / "n.h5", chunks=chunks, progress=stop_after(30), levels=2)
    with pytest.raises(ResumeMismatchError, match="levels: 2 -> "):
        write_hdf5(mosaic, tmp_path / "n.h5", chunks=chunks, resume=True)


@pytest.mark.parametrize("mode", ["shards", "virtual"])
def test_shard_modes_write_the_same_levels(tmp_path, any_client, tiles, mode):
    mosaic = _mosaic(tiles)
    single = write_hdf5(mosaic, tmp_path / "s.h5", chunks=(16, 16), codec="gzip")
    other = write_hdf5(mosaic, tmp_path / "o.h5", chunks=(16, 16), codec="gzip", mode=mode,
                       shard=(2, 2))  # fmt: skip
    a, names, _ = read_levels(single.out)
    b, _, _ = read_levels(other.out)
    assert other.chunks_total == single.chunks_total
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    if mode == "shards":  # the same compressed bytes, chunk for chunk, in every level
        with h5py.File(single.out) as f, h5py.File(other.out) as g:
            for n in names:
                ds, dt = f[n], g[n]
                assert ds.id.get_num_chunks() == dt.id.get_num_chunks()
                for i in range(ds.id.get_num_chunks()):
                    off = ds.id.get_chunk_info(i).chunk_offset
                    assert ds.id.read_direct_chunk(off) == dt.id.read_direct_chunk(off)
