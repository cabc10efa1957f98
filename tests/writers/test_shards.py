"""Shard write modes: worker-written shard files, assembled or behind a virtual dataset."""

import shutil

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

from lazystitch.errors import OutputExistsError, PartialOutputError, ResumeMismatchError
from lazystitch.fusion import fuse
from lazystitch.io import open_tiles_pattern
from lazystitch.layout import positions_from_csv
from lazystitch.testing import make_tiles, reference_stitch
from lazystitch.writers import ChunkCodec, OutputPaths, ShardError, describe_output, write_hdf5
from lazystitch.writers._plan import ArraySpec, run_header
from lazystitch.writers._shards import Shard, _write_shard


class Interrupt(Exception):
    pass


def _stop_after(n):
    def progress(done, total):
        if done >= n:
            raise Interrupt

    return progress


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    return make_tiles(tmp / "tiles", grid=(3, 4), tile_yx=(50, 60), overlap=(10, 12), jitter=3)


@pytest.fixture(scope="module")
def stack_tiles(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards-stack")
    return make_tiles(tmp / "tiles", grid=(2, 3), tile_yx=(40, 44), overlap=8, jitter=2, lead=(3,))


def _mosaic(s):
    ts = open_tiles_pattern(s.pattern, s.positions)
    return fuse(ts, positions_from_csv(s.positions_csv, ts.tile_yx), blend="linear")


def _read(path):
    with h5py.File(path, "r") as f:
        return f["mosaic"][...]


def _chunk_bytes(path):
    """Every stored chunk: offset -> (filter mask, bytes)."""
    with h5py.File(path, "r") as f:
        ds = f["mosaic"]
        offsets = [ds.id.get_chunk_info(i).chunk_offset for i in range(ds.id.get_num_chunks())]
        return {o: ds.id.read_direct_chunk(o) for o in offsets}


@pytest.mark.parametrize("codec", ["none", "gzip:4", "zstd"])
@pytest.mark.parametrize(
    ("chunks", "shard"), [((16, 16), (3, 2)), ((13, 29), (4, 4)), ((64, 64), (1, 1))]
)
def test_shards_mode_gives_the_single_writer_file_chunk_for_chunk(
    tmp_path, any_client, tiles, codec, chunks, shard
):
    mosaic = _mosaic(tiles)
    single = write_hdf5(mosaic, tmp_path / "single.h5", chunks=chunks, codec=codec)
    sharded = write_hdf5(
        mosaic, tmp_path / "sharded.h5", chunks=chunks, codec=codec, mode="shards", shard=shard
    )
    assert sharded.write_mode == "shards"
    assert sharded.chunks_written == single.chunks_written == single.chunks_total
    np.testing.assert_array_equal(
        _read(sharded.out), reference_stitch(tiles.tiles, tiles.positions)
    )
    assert _chunk_bytes(sharded.out) == _chunk_bytes(single.out)
    with h5py.File(sharded.out) as f:  # self-contained: a plain chunked dataset, nothing beside
        assert not f["mosaic"].is_virtual
        assert bool(f["mosaic"].attrs["lazystitch_complete"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sharded.h5", "single.h5"]


def test_virtual_mode_reads_the_same_and_moves_with_its_shards(tmp_path, client, tiles):
    mosaic = _mosaic(tiles)
    out = tmp_path / "a" / "v.h5"
    res = write_hdf5(
        mosaic, out, chunks=(16, 16), codec="gzip", mode="virtual", shard=(2, 3), levels=1
    )
    want = reference_stitch(tiles.tiles, tiles.positions)
    np.testing.assert_array_equal(_read(out), want)
    n_shards = len(list(OutputPaths(out).virtual_shards.glob("shard_*.h5")))
    assert n_shards == -(-res.shape[0] // 32) * -(-res.shape[1] // 48)
    info = describe_output(out)
    assert info["compression"] == "gzip:4" and info["chunks"] == [16, 16]
    assert info["storage"] == f"virtual: {n_shards} shard files in v.h5.shards"
    shutil.move(tmp_path / "a", tmp_path / "moved")  # relative paths: the pair moves together
    with h5py.File(tmp_path / "moved" / "v.h5") as f:
        assert f["mosaic"].is_virtual
        np.testing.assert_array_equal(f["mosaic"][...], want)


@pytest.mark.parametrize("mode", ["shards", "virtual"])
def test_stacks_shard_along_y_x_and_match_the_reference(tmp_path, client, stack_tiles, mode):
    mosaic = _mosaic(stack_tiles)
    res = write_hdf5(mosaic, tmp_path / "m.h5", chunks=(16, 16), mode=mode, shard=(2, 2))
    assert res.shape[0] == 3 and res.chunks == (1, 16, 16)
    np.testing.assert_array_equal(
        _read(res.out), reference_stitch(stack_tiles.tiles, stack_tiles.positions)
    )


@pytest.mark.parametrize("mode", ["shards", "virtual"])
def test_interrupted_shard_run_resumes_reusing_finished_shards(tmp_path, client, tiles, mode):
    mosaic = _mosaic(tiles)
    out = tmp_path / "m.h5"
    kw = {"chunks": (8, 8), "codec": "gzip", "mode": mode, "shard": (2, 2)}
    with pytest.raises(Interrupt):
        write_hdf5(mosaic, out, progress=_stop_after(40), **kw)
    assert not out.exists()
    info = describe_output(out)
    assert info["state"] == "partial" and info["chunks_written"] >= 40
    with pytest.raises(PartialOutputError, match=r"--resume.*--overwrite"):
        write_hdf5(mosaic, out, **kw)
    res = write_hdf5(mosaic, out, resume=True, **kw)
    assert res.chunks_skipped >= info["chunks_written"]  # shards finished after the interrupt too
    assert 0 < res.chunks_written < res.chunks_total
    assert res.chunks_written + res.chunks_skipped == res.chunks_total
    assert not OutputPaths(out).leftovers()
    clean = write_hdf5(mosaic, tmp_path / "clean.h5", chunks=(8, 8), codec="gzip")
    np.testing.assert_array_equal(_read(out), _read(clean.out))
    if mode == "shards":
        assert _chunk_bytes(out) == _chunk_bytes(clean.out)


def test_resume_refuses_shards_made_with_other_settings_or_another_mode(tmp_path, client, tiles):
    mosaic = _mosaic(tiles)
    out = tmp_path / "m.h5"
    with pytest.raises(Interrupt):
        write_hdf5(mosaic, out, chunks=(8, 8), mode="shards", progress=_stop_after(20))
    with pytest.raises(ResumeMismatchError, match=r"other settings \(compression: 'none' -> 'lzf'"):
        write_hdf5(mosaic, out, chunks=(8, 8), codec="lzf", mode="shards", resume=True)
    with pytest.raises(ResumeMismatchError, match="started with a shard write mode"):
        write_hdf5(mosaic, out, chunks=(8, 8), resume=True)
    other = tmp_path / "o.h5"
    with pytest.raises(Interrupt):
        write_hdf5(mosaic, other, chunks=(8, 8), progress=_stop_after(20), batch_seconds=0)
    with pytest.raises(ResumeMismatchError, match="started with write mode single"):
        write_hdf5(mosaic, other, chunks=(8, 8), mode="shards", resume=True)


def test_modes_replace_each_other_only_with_overwrite_and_leave_no_orphans(tmp_path, client, tiles):
    mosaic = _mosaic(tiles)
    out = tmp_path / "m.h5"
    paths = OutputPaths(out)
    write_hdf5(mosaic, out, chunks=(16, 16), mode="virtual")
    with pytest.raises(OutputExistsError):
        write_hdf5(mosaic, out, chunks=(16, 16), mode="shards")
    assert paths.virtual_shards.is_dir()
    write_hdf5(mosaic, out, chunks=(16, 16), mode="shards", overwrite=True)
    assert not paths.virtual_shards.exists()  # the old virtual output's shards went with it
    write_hdf5(mosaic, out, chunks=(16, 16), mode="virtual", overwrite=True)
    write_hdf5(mosaic, out, chunks=(16, 16), overwrite=True)
    assert not paths.virtual_shards.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]
    np.testing.assert_array_equal(_read(out), reference_stitch(tiles.tiles, tiles.positions))


def test_a_shard_that_cannot_be_written_names_the_file_and_the_need(tmp_path):
    spec = ArraySpec("mosaic", (8, 8), "uint16", (8, 8))
    header = run_header([spec], layout="hdf5", codec="none", fingerprint="")
    block = np.zeros((8, 8), np.uint16)
    with pytest.raises(ShardError, match=r"cannot write shard .*missing/shard_0_0_0\.h5.*shared"):
        _write_shard(
            [(block, 0, 0)],
            str(tmp_path / "missing"),
            Shard((0, 0), (0, 0), (1, 1)),
            header,
            ChunkCodec.parse("none"),
        )


def test_a_shard_whose_bytes_changed_is_found_and_computed_again(tmp_path, client, tiles, caplog):
    mosaic = _mosaic(tiles)
    out = tmp_path / "m.h5"
    kw = {"chunks": (16, 16), "mode": "shards", "shard": (2, 2), "levels": 1}

    def stop_before_assembly(done, total):
        if done == total:  # every shard is written
            raise Interrupt

    with pytest.raises(Interrupt):
        write_hdf5(mosaic, out, progress=stop_before_assembly, **kw)
    shard = OutputPaths(out).shards / "shard_0_0_1.h5"
    with h5py.File(shard, "r") as f:
        where = f["mosaic"].id.get_chunk_info(0).byte_offset
    with open(shard, "r+b") as fh:  # flip one byte of one chunk
        fh.seek(where)
        byte = fh.read(1)
        fh.seek(where)
        fh.write(bytes([byte[0] ^ 0xFF]))
    res = write_hdf5(mosaic, out, resume=True, **kw)  # the bad shard is found and redone
    assert res.chunks_written == 4 and res.chunks_skipped == res.chunks_total - 4
    np.testing.assert_array_equal(_read(out), reference_stitch(tiles.tiles, tiles.positions))
    assert "chunk (0, 2) in shard" in caplog.text and "does not verify" in caplog.text


def test_auto_write_mode_is_shards_only_for_batch_workers_lazystitch_started():
    from lazystitch.api import write_mode
    from lazystitch.config import load_config

    def cfg(**cluster):
        return load_config(
            None,
            {
                "tiles": {"pattern": "t_{row}_{col}.tif"},
                "layout": {"grid": "1x2", "overlap": 0.1},
                "output": {"path": "m.h5"},
                "cluster": cluster,
            },
        )

    assert write_mode(cfg(kind="slurm"), started=True).value == "shards"
    assert write_mode(cfg(kind="pbs"), started=False).value == "single"  # the caller's client
    assert write_mode(cfg(), started=True).value == "single"
    assert write_mode(cfg(kind="address", scheduler="tcp://h:1"), started=True).value == "single"
    explicit = cfg(kind="slurm").model_copy(
        update={"output": cfg().output.model_copy(update={"write_mode": "virtual"})}
    )
    assert write_mode(explicit, started=True).value == "virtual"
