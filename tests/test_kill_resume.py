"""kill -9 of the whole job (client and workers) mid-write, then --resume."""

import json
import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
import tifffile
import zarr

from lazystitch.testing import make_tiles
from lazystitch.writers import OutputPaths, describe_output

TWO_WORKERS = ("--workers", "2")


def _durable_chunks(paths, mode):
    """Chunks a run has made durable: journaled (single) or in renamed shard files."""
    if mode == "shards":
        return describe_output(paths.final)["chunks_written"] if paths.shards.exists() else -1
    try:
        return paths.journal.read_text().count("\n") - 1
    except FileNotFoundError:
        return -1


def _levels(path):
    """Every level of a plain HDF5, BigDataViewer (every setup) or OME-Zarr output, and of its
    tile map if it has one, by name (with its stored chunk count, and whether it is virtual)."""
    if path.name.endswith(".tif"):  # its pyramids: SubIFDs, as tifffile reads them
        with tifffile.TiffFile(path) as tif:
            return {
                f"{series.name}/{k}": (lv.asarray(), len(lv.pages), False)
                for series in tif.series
                for k, lv in enumerate(series.levels)
            }
    if path.is_dir():
        root = zarr.open_group(path, mode="r")
        groups = [("", root)]
        if "labels" in root:
            groups.append(("labels/tile_map/", root["labels/tile_map"]))
        return {
            p + n: (g[n][...], g[n].nchunks_initialized, False)
            for p, g in groups
            for n in sorted(g.array_keys(), key=int)
        }
    with h5py.File(path) as f:
        if "s00" in f:  # BigDataViewer
            setups = sorted(n for n in f if n.startswith("s"))
            levels = len(f["s00/resolutions"])
            names = [f"t00000/{s}/{k}/cells" for s in setups for k in range(levels)]
        else:
            names = list(f["mosaic"].attrs["lazystitch_levels"])
        if "tile_map" in f:
            names += list(f["tile_map"].attrs["lazystitch_levels"])
        return {n: (f[n][...], f[n].id.get_num_chunks(), f[n].is_virtual) for n in names}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "trial", "fmt"),
    [("single", 0, "h5"), ("single", 1, "h5"), ("shards", 2, "h5"), ("single", 3, "xml"),
     ("shards", 4, "xml"), ("single", 5, "ome.zarr"), ("single", 6, "ome.zarr"),
     ("single", 7, "ome.zarr"), ("single", 8, "ome.tif")],
    ids=["single-0", "single-1", "shards", "bdv", "bdv-channels-shards", "ome-zarr-0.5",
         "ome-zarr-0.5-sharded", "ome-zarr-0.4", "ome-tiff"],
)  # fmt: skip
def test_kill_9_then_resume_gives_identical_data(tmp_path, mode, trial, fmt, stitch_command):
    channels = {"lead": (2,), "axes": "CYX"} if trial == 4 else {}  # a BDV setup per channel
    s = make_tiles(
        tmp_path / "tiles", grid=(5, 6), tile_yx=(200, 200), overlap=30, jitter=8, seed=trial,
        **channels,
    )  # fmt: skip
    out = tmp_path / f"m.{fmt}"
    zarr_out, tiff_out = fmt == "ome.zarr", fmt == "ome.tif"
    # the files of the run: an OME-TIFF's pyramid is journaled in OUT.partial.levels.h5
    paths = OutputPaths(out if zarr_out else tmp_path / "m.h5")
    if tiff_out:
        paths = OutputPaths(OutputPaths(out).levels)
    # OME-Zarr: uncompressed chunks (their bytes, no codec), or Zarr v3 shards of 4 x 4 gzip
    # chunks (encoded through zarr-python), or 0.4
    zarr_args = {
        5: ("--compression", "none"),
        6: ("--shard", "4,4"),
        7: ("--ome-zarr-version", "0.4", "--compression", "none"),
    }.get(trial, ())
    # a tile map, written by the same core, in a trial of each format but BigDataViewer's
    tile_map = ("--tile-map",) if trial in (1, 2, 5, 6, 8) else ()
    zarr_args = (*zarr_args, *tile_map)
    run = (*TWO_WORKERS, "--write-mode", mode, "--pixel-size", "0.5", *zarr_args)
    if not zarr_out:
        run += ("--shard", "4,4")  # OME-Zarr: Zarr v3 shards of 4 x 4 chunks in trial 6
    proc = subprocess.Popen(
        stitch_command(s, out, *run),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    want = 1 + 3 * (trial % 2)  # kill after a different amount of progress in each trial
    deadline = time.monotonic() + 120
    while (
        _durable_chunks(paths, mode) < want * 50
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed; make the job larger"
    os.killpg(proc.pid, signal.SIGKILL)  # the client and its LocalCluster workers
    proc.communicate()
    assert not out.exists() and not paths.final.exists()
    assert (paths.shards if mode == "shards" else paths.partial).exists()
    durable = _durable_chunks(paths, mode)
    assert durable > 0

    res = subprocess.run(
        stitch_command(s, out, *run, "--resume"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["chunks_skipped"] >= durable - 1  # at most the torn last line is lost
    assert summary["write_mode"] == mode
    assert summary["chunks_written"] + summary["chunks_skipped"] == summary["chunks_total"]
    assert summary["chunks_written"] < summary["chunks_total"]
    assert not paths.leftovers() and not OutputPaths(out).leftovers()

    clean = tmp_path / f"clean.{fmt}"
    ref = subprocess.run(
        stitch_command(s, clean, *TWO_WORKERS, "--pixel-size", "0.5", *zarr_args),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ref.returncode == 0, ref.stderr
    if tiff_out:  # the pyramid is converted and removed
        assert not paths.final.exists() and sorted(os.listdir(tmp_path)) == [
            "clean.ome.tif",
            "clean.ome.tif.preview.png",
            "m.ome.tif",
            "m.ome.tif.preview.png",
            "tiles",
        ]
        paths = OutputPaths(out)
    got, want = (
        _levels(paths.final),
        _levels(clean if zarr_out or tiff_out else tmp_path / "clean.h5"),
    )
    assert list(got) == list(want) and len(got) > 1  # the pyramid too
    assert any("tile_map" in n for n in got) == bool(tile_map)
    for name, (data, n_chunks, virtual) in got.items():
        np.testing.assert_array_equal(data, want[name][0], err_msg=name)
        assert n_chunks == want[name][1] and not virtual
    if zarr_out:  # the same metadata, and complete
        assert (out / "zarr.json").exists() != (trial == 7)
        meta = out / ("zarr.json" if trial != 7 else ".zattrs")
        assert meta.read_text() == (clean / meta.name).read_text()
    if fmt == "xml":
        assert out.read_text() == clean.read_text().replace("clean.h5", "m.h5")
        assert out.read_text().count("<ViewSetup>") == (2 if channels else 1)


@pytest.mark.slow
def test_concurrent_run_is_refused_while_the_first_writes(tmp_path, stitch_command):
    s = make_tiles(tmp_path / "tiles", grid=(5, 6), tile_yx=(200, 200), overlap=30, jitter=8)
    out = tmp_path / "m.h5"
    first = subprocess.Popen(
        stitch_command(s, out, *TWO_WORKERS), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    lock = tmp_path / "m.h5.lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lock.exists(), "the first run never took the lock"
    second = subprocess.run(
        stitch_command(s, out, *TWO_WORKERS, "--resume"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 1
    assert (
        f"process {first.pid} on host" in second.stderr
        and "being written by another run" in second.stderr
    )
    first.communicate(timeout=300)
    assert first.returncode == 0  # the first run was not disturbed
    with h5py.File(out) as f:
        assert f["mosaic"].attrs["lazystitch_complete"]
