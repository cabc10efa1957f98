"""The command line as users run it: real processes, exit codes, one-line errors, JSON."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml

from lazystitch.testing import make_tiles, reference_stitch

JSON_KEYS = {
    "out",
    "dataset",
    "shape",
    "dtype",
    "chunks_total",
    "chunks_written",
    "chunks_skipped",
    "seconds",
}


def run(*args, cwd=None, timeout=180):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "lazystitch", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


def csv_stitch(tiles, out, address) -> list:
    """``stitch`` arguments for a synthetic tile set with its positions CSV, on ``address``."""
    return [
        "stitch",
        "--tiles",
        tiles.pattern,
        "--positions",
        tiles.positions_csv,
        "--out",
        out,
        "--scheduler",
        address,
    ]


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def one_line_error(proc) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("lazystitch:")]
    assert lines, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[-1]


@pytest.fixture
def tiles(tmp_path):
    return make_tiles(tmp_path / "tiles", grid=(3, 3), tile_yx=(64, 80), overlap=(10, 16), jitter=4)


@pytest.fixture
def address(client):
    return client.scheduler.address


def _read(path, name="mosaic"):
    with h5py.File(path, "r") as f:
        return f[name][...]


def test_version():
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("lazystitch 0.")


@pytest.mark.slow
def test_stitch_on_its_own_local_cluster_with_json(tmp_path, tiles):
    out = tmp_path / "m.h5"
    proc = run(
        "stitch",
        "--tiles",
        tiles.pattern,
        "--positions",
        tiles.positions_csv,
        "--blend",
        "average",
        "--out",
        out,
        "--chunks",
        "33,47",
        "--compression",
        "gzip",
        "--workers",
        "2",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    summary = last_json(proc.stdout)
    assert set(summary) >= JSON_KEYS
    assert summary["chunks_written"] == summary["chunks_total"] and summary["chunks_skipped"] == 0
    # a job this small gets no dashboard by default (cluster.dashboard: auto), and says so
    assert "1 worker(s), 2 thread(s); dashboard: off (--dashboard on" in proc.stderr
    np.testing.assert_array_equal(
        _read(out), reference_stitch(tiles.tiles, tiles.positions, "average")
    )


@pytest.mark.parametrize("blend", ["linear", "average", "max", "first", "last"])
def test_stitch_grid_reproduces_source_through_scheduler(tmp_path, address, blend):
    s = make_tiles(tmp_path / "t", grid=(2, 3), tile_yx=(50, 40), overlap=(10, 8), lead=(2,))
    out = tmp_path / "m.h5"
    proc = run(
        "stitch",
        "--tiles",
        s.pattern,
        "--grid",
        "2x3",
        "--overlap",
        "10,8",
        "--blend",
        blend,
        "--out",
        out,
        "--dataset",
        "img",
        "--chunks",
        "1,21,19",
        "--scheduler",
        address,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    got = _read(out, "img")
    assert last_json(proc.stdout)["shape"] == list(got.shape)
    assert np.abs(got.astype(int) - s.image.astype(int)).max() <= (
        0 if blend in ("max", "first", "last") else 1
    )


def test_config_file_with_flag_overrides(tmp_path, tiles, address):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "tiles": {"pattern": "tiles/tile_r{row:03d}_c{col:03d}.tif"},
                "layout": {"positions": "tiles/positions.csv"},
                "fusion": {"blend": "linear"},
                "output": {"path": "out.h5", "chunks": [30, 30]},
            }
        )
    )
    proc = run("stitch", cfg, "--blend", "max", "--scheduler", address, "--json")
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc.stdout)["out"] == str(tmp_path / "out.h5")
    np.testing.assert_array_equal(
        _read(tmp_path / "out.h5"), reference_stitch(tiles.tiles, tiles.positions, "max")
    )


def test_info_reports_complete_and_partial(tmp_path, tiles, address):
    out = tmp_path / "m.h5"
    run(*csv_stitch(tiles, out, address), "--compression", "zstd")
    proc = run("info", out, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["state"] == "complete" and info["tiles"] == 9 and info["compression"] == "zstd"
    out.rename(tmp_path / "m.h5.partial")  # as if the run had stopped before the rename
    partial = run("info", out)
    assert partial.returncode == 0 and "state: partial" in partial.stdout
    assert "--resume" in partial.stdout
    assert one_line_error(run("info", tmp_path / "nothing.h5")).endswith(
        "does not exist (and no partial run " + str(tmp_path / "nothing.h5.partial") + ")"
    )


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing", r"tile_r001_c002\.tif does not exist"),
        ("truncated", r"tile_r002_c000\.tif is truncated"),
        ("shape", r"tile_r000_c001\.tif \(row 0, col 1\) has shape \(64, 81\)"),
        ("dtype", r"tile_r000_c001\.tif \(row 0, col 1\) has dtype float32"),
    ],
)
def test_bad_tiles_give_one_clear_line(tmp_path, tiles, breakage, message):
    import re

    import tifffile

    d = tiles.directory
    if breakage == "missing":
        (d / "tile_r001_c002.tif").unlink()
    elif breakage == "truncated":
        p = d / "tile_r002_c000.tif"
        p.write_bytes(p.read_bytes()[:-500])
    elif breakage == "shape":
        tifffile.imwrite(d / "tile_r000_c001.tif", np.zeros((64, 81), np.uint16))
    else:
        tifffile.imwrite(d / "tile_r000_c001.tif", np.zeros((64, 80), np.float32))
    out = tmp_path / "m.h5"
    proc = run(
        "stitch", "--tiles", tiles.pattern, "--grid", "3x3", "--overlap", "10,16", "--out", out
    )
    assert proc.returncode == 1
    assert re.search(message, one_line_error(proc))
    assert not out.exists() and not (tmp_path / "m.h5.partial").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"fusion": {"blend": "median"}}, r"fusion\.blend\)?: Input should be 'linear'"),
        ({"fusion": {"blnd": "max"}}, r"fusion\.blnd: unknown key"),
        (
            {"output": {"path": "o.h5", "chunks": "a,b"}},
            r"output\.chunks\)?: chunks must be numbers",
        ),
    ],
)
def test_bad_config_gives_one_clear_line(tmp_path, config, message):
    import re

    cfg = tmp_path / "c.yaml"
    base = {
        "tiles": {"pattern": "t_{row}_{col}.tif"},
        "layout": {"grid": "1x1", "overlap": 0},
        "output": {"path": "o.h5"},
    }
    cfg.write_text(yaml.safe_dump({**base, **config}))
    for proc in (run("stitch", cfg), run("validate-config", cfg)):
        assert proc.returncode == 1
        assert re.search(message, one_line_error(proc))


def test_bad_flag_value_is_a_usage_error(tmp_path):
    proc = run("stitch", "--blend", "median", "--out", tmp_path / "o.h5")
    assert proc.returncode == 2 and "median" in proc.stderr


def test_debug_shows_the_traceback(tmp_path):
    proc = run(
        "stitch",
        "--tiles",
        str(tmp_path / "t_{row}_{col}.tif"),
        "--grid",
        "1x1",
        "--overlap",
        "0",
        "--out",
        tmp_path / "o.h5",
        "--debug",
    )
    assert (
        proc.returncode == 1 and "Traceback" in proc.stderr and "TileNotFoundError" in proc.stderr
    )


def test_existing_output_and_leftover_partial_are_refused(tmp_path, tiles, address):
    out = tmp_path / "m.h5"
    out.write_bytes(b"keep me")
    args = csv_stitch(tiles, out, address)
    line = one_line_error(run(*args))
    assert "already exists; pass --overwrite" in line and out.read_bytes() == b"keep me"
    out.unlink()
    partial = tmp_path / "m.h5.partial"
    partial.write_bytes(b"half")
    line = one_line_error(run(*args))
    assert "partial run was left" in line and "--resume" in line and "--overwrite" in line
    assert partial.read_bytes() == b"half"
    proc = run(*args, "--overwrite", "--json")
    assert proc.returncode == 0, proc.stderr
    assert not partial.exists() and out.exists()


@pytest.mark.slow
def test_demo_runs_from_an_empty_folder(tmp_path):
    proc = run("demo", tmp_path / "demo", "--workers", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = last_json(proc.stdout)
    assert summary["max_abs_error"] == 0 and summary["chunks_written"] == summary["chunks_total"]
    assert "mosaic:" in proc.stdout and "stitched in" in proc.stdout


@pytest.mark.slow
def test_a_stitch_imports_neither_dask_array_nor_scipy(tmp_path, tiles):
    """Start-up is part of a user's wall time: a stitch without registration writes fusion's
    graph as it is, and dask.array (with scipy, which it imports) is never loaded."""
    code = f"""
import sys
import lazystitch.api as api
api.stitch({{"tiles": {{"pattern": {tiles.pattern!r}}},
            "layout": {{"positions": {str(tiles.positions_csv)!r}}},
            "output": {{"path": {str(tmp_path / "m.h5")!r}}}, "cluster": {{"workers": 1}}}})
print(sorted(m for m in sys.modules if m.split(".")[0] == "scipy" or m.startswith("dask.array")))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    np.testing.assert_array_equal(
        _read(tmp_path / "m.h5"), reference_stitch(tiles.tiles, tiles.positions, "linear")
    )


def test_info_of_a_zarr_folder_without_zarr_python_says_what_to_install(tmp_path, monkeypatch):
    from lazystitch.errors import OutputTargetError
    from lazystitch.writers import describe_output

    with pytest.raises(FileNotFoundError, match=r"m\.ome\.zarr does not exist"):
        describe_output(tmp_path / "m.ome.zarr")
    (tmp_path / "m.ome.zarr").mkdir()
    monkeypatch.setitem(sys.modules, "zarr", None)  # as on a base install: import fails
    with pytest.raises(OutputTargetError, match=r"pip install 'lazystitch\[zarr\]'"):
        describe_output(tmp_path / "m.ome.zarr")
