"""The HDF5 writer: exactly once, whole chunks, atomic finish, resume."""

import json

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

from lazystitch.errors import OutputExistsError, PartialOutputError, ResumeMismatchError
from lazystitch.fusion import fuse
from lazystitch.io import open_tiles_pattern
from lazystitch.layout import positions_from_csv
from lazystitch.testing import make_tiles, reference_stitch
from lazystitch.writers import (
    COMPLETE_ATTR,
    ChunkCodec,
    OutputPaths,
    describe_output,
    write_hdf5,
)
from lazystitch.writers._journal import read_journal


class Interrupt(Exception):
    pass


@pytest.fixture
def job(tmp_path):
    s = make_tiles(tmp_path / "tiles", grid=(3, 3), tile_yx=(50, 60), overlap=(10, 12), jitter=3)
    ts = open_tiles_pattern(s.pattern, s.positions)
    mosaic = fuse(ts, positions_from_csv(s.positions_csv, ts.tile_yx), blend="linear")
    return s, mosaic, reference_stitch(s.tiles, s.positions, "linear")


def _read(path):
    with h5py.File(path, "r") as f:
        return f["mosaic"][...]


def _stop_after(n):
    def progress(done, total):
        if done >= n:
            raise Interrupt

    return progress


@pytest.mark.parametrize("codec", ["none", "gzip:1", "gzip:9", "lzf", "blosc", "zstd:5"])
def test_every_codec_round_trips(tmp_path, client, job, codec):
    _, mosaic, ref = job
    res = write_hdf5(mosaic, tmp_path / "m.h5", chunks=(19, 31), codec=codec)
    np.testing.assert_array_equal(_read(res.out), ref)
    assert describe_output(res.out)["compression"].split(":")[0] == codec.split(":")[0]


def test_each_chunk_is_stored_once_whole(tmp_path, client, job):
    _, mosaic, _ = job
    res = write_hdf5(mosaic, tmp_path / "m.h5", chunks=(16, 16), codec="gzip", levels=1)
    assert (
        res.chunks_written
        == res.chunks_total
        == len(list(np.ndindex(*mosaic.rechunk((16, 16)).numblocks)))
    )
    with h5py.File(res.out, "r") as f:
        ds = f["mosaic"]
        n = ds.id.get_num_chunks()
        infos = [ds.id.get_chunk_info(i) for i in range(n)]
    assert n == res.chunks_total
    assert len({i.byte_offset for i in infos}) == n  # no chunk stored twice
    assert len({i.chunk_offset for i in infos}) == n


def test_metadata_and_completion_flag(tmp_path, client, job):
    _, mosaic, _ = job
    res = write_hdf5(mosaic, tmp_path / "m.h5", attrs={"blend": "linear"}, fingerprint="abc")
    with h5py.File(res.out, "r") as f:
        attrs = f["mosaic"].attrs
        assert bool(attrs[COMPLETE_ATTR]) is True
        assert json.loads(attrs["lazystitch_run"])["inputs"] == "abc"
        assert attrs["blend"] == "linear"
    assert not OutputPaths(res.out).leftovers()


def test_existing_output_is_not_overwritten(tmp_path, client, job):
    _, mosaic, _ = job
    out = tmp_path / "m.h5"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="already exists; pass --overwrite"):
        write_hdf5(mosaic, out)
    assert out.read_bytes() == b"precious"


def test_overwrite_replaces_only_when_complete(tmp_path, client, job):
    _, mosaic, ref = job
    out = tmp_path / "m.h5"
    out.write_bytes(b"precious")
    with pytest.raises(Interrupt):
        write_hdf5(
            mosaic, out, chunks=(8, 8), overwrite=True, progress=_stop_after(5), batch_seconds=0
        )
    assert out.read_bytes() == b"precious"  # an interrupted overwrite leaves the old file
    write_hdf5(mosaic, out, chunks=(8, 8), overwrite=True)
    np.testing.assert_array_equal(_read(out), ref)


def test_interrupted_run_leaves_a_partial_that_resume_completes(tmp_path, client, job):
    _, mosaic, ref = job
    out = tmp_path / "m.h5"
    with pytest.raises(Interrupt):
        write_hdf5(
            mosaic, out, chunks=(8, 8), codec="gzip", progress=_stop_after(40), batch_seconds=0
        )
    assert not out.exists()
    info = describe_output(out)
    assert info["state"] == "partial" and info["chunks_written"] >= 40
    # a plain rerun refuses, naming both ways out
    with pytest.raises(PartialOutputError, match=r"--resume.*--overwrite"):
        write_hdf5(mosaic, out, chunks=(8, 8), codec="gzip")
    res = write_hdf5(mosaic, out, chunks=(8, 8), codec="gzip", resume=True)
    assert res.chunks_skipped == info["chunks_written"]
    assert res.chunks_written + res.chunks_skipped == res.chunks_total
    np.testing.assert_array_equal(_read(out), ref)
    uninterrupted = write_hdf5(mosaic, tmp_path / "u.h5", chunks=(8, 8), codec="gzip")
    with h5py.File(out) as a, h5py.File(uninterrupted.out) as b:
        for i in range(a["mosaic"].id.get_num_chunks()):  # same encoded bytes, chunk by chunk
            off = a["mosaic"].id.get_chunk_info(i).chunk_offset
            assert a["mosaic"].id.read_direct_chunk(off) == b["mosaic"].id.read_direct_chunk(off)


def test_resume_recomputes_chunks_whose_bytes_do_not_verify(tmp_path, client, job):
    _, mosaic, ref = job
    out = tmp_path / "m.h5"
    with pytest.raises(Interrupt):
        write_hdf5(mosaic, out, chunks=(8, 8), progress=_stop_after(30), batch_seconds=0)
    paths = OutputPaths(out)
    with h5py.File(paths.partial, "r") as f:  # find where one journaled chunk lives
        info = f["mosaic"].id.get_chunk_info(0)
    _, journaled = read_journal(paths.journal)
    assert len(journaled) >= 2
    with open(paths.partial, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * 16)
    res = write_hdf5(mosaic, out, chunks=(8, 8), resume=True)
    assert res.chunks_skipped == len(journaled) - 1  # every journaled chunk but the bad one
    np.testing.assert_array_equal(_read(out), ref)
    assert res.chunks_written + res.chunks_skipped == res.chunks_total


def test_resume_with_other_settings_is_refused_and_changes_nothing(tmp_path, client, job):
    _, mosaic, _ = job
    out = tmp_path / "m.h5"
    with pytest.raises(Interrupt):
        write_hdf5(mosaic, out, chunks=(8, 8), progress=_stop_after(10), batch_seconds=0)
    before = {p: p.read_bytes() for p in OutputPaths(out).leftovers()}
    with pytest.raises(ResumeMismatchError, match=r"chunks: \[8, 8\] -> \[9, 9\]"):
        write_hdf5(mosaic, out, chunks=(9, 9), resume=True)
    assert {p: p.read_bytes() for p in OutputPaths(out).leftovers()} == before


def test_resume_of_a_complete_output_does_nothing(tmp_path, client, job):
    _, mosaic, _ = job
    out = tmp_path / "m.h5"
    write_hdf5(mosaic, out)
    mtime = out.stat().st_mtime_ns
    res = write_hdf5(mosaic, out, resume=True)
    assert (res.chunks_written, res.chunks_skipped) == (0, res.chunks_total)
    assert out.stat().st_mtime_ns == mtime


def test_without_a_client_the_local_scheduler_is_used(tmp_path, job):
    from distributed import get_client

    with pytest.raises(ValueError):
        get_client()  # no client is active in this test
    _, mosaic, ref = job
    res = write_hdf5(mosaic, tmp_path / "m.h5", chunks=(13, 64), codec="lzf")
    np.testing.assert_array_equal(_read(res.out), ref)


def test_codec_rejects_bad_specs():
    with pytest.raises(ValueError, match="unknown compression 'snappy'"):
        ChunkCodec.parse("snappy")
    with pytest.raises(ValueError, match="out of range"):
        ChunkCodec.parse("gzip:12")
    with pytest.raises(ValueError, match="takes no level"):
        ChunkCodec.parse("lzf:3")


@pytest.mark.parametrize("spec", ["gzip:1", "gzip:9", "lzf", "zstd", "blosc"])
def test_encoded_chunks_read_back_through_hdf5_and_edges_are_padded(tmp_path, spec):

    codec = ChunkCodec.parse(spec)
    rng = np.random.default_rng(5)
    block = rng.integers(0, 9, size=(3, 5), dtype=np.uint16)  # the corner of a (7, 13) array
    inner = rng.integers(0, 60000, size=(4, 8), dtype=np.uint16)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        ds = f.create_dataset(
            "d", shape=(7, 13), chunks=(4, 8), dtype="u2", **codec.dataset_kwargs()
        )
        ds.id.write_direct_chunk((4, 8), *codec.encode(block, (4, 8)))
        ds.id.write_direct_chunk((0, 0), *codec.encode(inner, (4, 8)))
    with h5py.File(tmp_path / "x.h5", "r") as f:
        np.testing.assert_array_equal(f["d"][4:, 8:], block)
        np.testing.assert_array_equal(f["d"][:4, :8], inner)


def test_a_second_run_on_the_same_output_is_refused(tmp_path, client, job):
    import json
    import os
    import socket

    from lazystitch.errors import OutputLockedError

    _, mosaic, _ = job
    out = tmp_path / "m.h5"
    lock = tmp_path / "m.h5.lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))  # alive
    with pytest.raises(OutputLockedError, match=rf"process {os.getpid()} on host"):
        write_hdf5(mosaic, out)
    assert lock.exists() and not out.exists() and not OutputPaths(out).leftovers()


def test_a_stale_lock_is_reported_and_taken_over(tmp_path, client, job):
    import json
    import socket
    import subprocess

    from lazystitch.errors import LazystitchWarning

    _, mosaic, ref = job
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "m.h5"
    lock = tmp_path / "m.h5.lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    with pytest.warns(LazystitchWarning, match=rf"stale lock .* process {dead.pid}"):
        write_hdf5(mosaic, out)
    np.testing.assert_array_equal(_read(out), ref)
    assert not lock.exists()
