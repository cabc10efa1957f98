"""Hostile input through the CLI, as a new user would try it: each ends in one clear line on
stderr naming the flag, file or key, a non-zero exit within a bounded time, no traceback, and
nothing that existed before modified."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest
import tifffile
import yaml

from lazystitch.testing import make_tiles, reference_stitch
from lazystitch.writers import OutputPaths


def run(*args, cwd=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "lazystitch", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"},
    )


def refused(proc, *words) -> str:
    """The one error line of a refused run (its last line); every word must be in it."""
    assert proc.returncode not in (0, None), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("lazystitch: error")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


def snapshot(folder) -> dict:
    """Every file under ``folder`` with its bytes (to show that nothing was modified)."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def tiles(tmp_path):
    return make_tiles(tmp_path / "tiles", grid=(3, 3), tile_yx=(64, 80), overlap=(10, 16), jitter=4)


def stitch(tiles, out, *extra):
    return [
        "stitch",
        "--tiles",
        tiles.pattern,
        "--positions",
        tiles.positions_csv,
        "--out",
        out,
        *extra,
    ]


@pytest.mark.parametrize("which", ["tile", "positions"])
def test_an_input_is_never_the_output_even_with_overwrite(tmp_path, tiles, which):
    target = tiles.directory / "tile_r001_c001.tif" if which == "tile" else tiles.positions_csv
    before = snapshot(tmp_path)
    line = refused(run(*stitch(tiles, target, "--overwrite", "--workers", "1")), str(target))
    assert "is an input of this run" in line
    assert snapshot(tmp_path) == before


def test_overwrite_keeps_a_folder_lazystitch_did_not_write(tmp_path, tiles):
    out = tmp_path / "m.h5"
    own = tmp_path / "m.h5.shards"
    own.mkdir()
    (own / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    refused(run(*stitch(tiles, out, "--overwrite")), str(own), "did not write", "notes.txt")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["folder", "fifo", "empty", "dot", "trailing-slash"])
def test_an_output_that_is_no_file_is_refused_before_any_work(tmp_path, tiles, kind):
    if kind == "folder":
        out = tmp_path / "dir"
        out.mkdir()
        words = ["--out", "is a folder"]
    elif kind == "fifo":
        out = tmp_path / "pipe"
        os.mkfifo(out)
        words = ["--out", "not a regular file"]
    else:
        out = {"empty": "", "dot": ".", "trailing-slash": f"{tmp_path}/new/"}[kind]
        words = ["--out (output.path)", "must name a file"]
    before = snapshot(tmp_path)
    t0 = time.monotonic()
    refused(run(*stitch(tiles, out, "--overwrite"), cwd=tmp_path), *words)
    assert time.monotonic() - t0 < 30  # refused before a cluster starts
    assert snapshot(tmp_path) == before and not list(tmp_path.glob("*.partial*"))


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--memory-limit", "1KiB"], ["--memory-limit (cluster.memory_limit)", "too small"]),
        (["--memory-limit", "-1GiB"], ["--memory-limit", "too small"]),
        (["--workers", "1000"], ["--workers (cluster.workers)", "per core"]),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], ["workers cannot be set"]),
        (["--chunks", "1"], ["--chunks", "chunks of 2 bytes"]),
        (["--dataset", "/"], ["--dataset (output.dataset)"]),
        (["--dataset", "."], ["--dataset (output.dataset)"]),
        (["--overlap", "1.0", "--grid", "3x3"], ["--overlap (layout.overlap)", "ambiguous"]),
        (["--overlap", "150%", "--grid", "3x3"], ["--overlap", "no step"]),
        (["--overlap", "100%", "--grid", "3x3"], ["--overlap", "no step"]),
        (["--overlap", "80", "--grid", "3x3"], ["layout.overlap", "no step"]),
        (["--grid", "3x3"], ["--grid with --overlap", "needs 'overlap'"]),
        (
            ["--register", "--max-shift", "1e6"],
            ["registration.max_shift", "not smaller than the tiles"],
        ),
    ],
)
def test_absurd_settings_are_refused_in_one_line(tmp_path, tiles, flags, words):
    out = tmp_path / "m.h5"
    args = stitch(tiles, out, *flags)
    if "--grid" in flags:  # the grid replaces the positions
        i = args.index("--positions")
        del args[i : i + 2]
    t0 = time.monotonic()
    refused(run(*args), *words)
    assert time.monotonic() - t0 < 30
    assert not out.exists() and not OutputPaths(out).leftovers()


def test_missing_layout_and_output_name_the_flags(tmp_path, tiles):
    refused(
        run("stitch", "--tiles", tiles.pattern, "--out", tmp_path / "m.h5"), "--grid", "--positions"
    )
    refused(
        run("stitch", "--tiles", tiles.pattern, "--positions", tiles.positions_csv),
        "--out (output.path)",
    )


def test_bare_stitch_shows_its_usage():
    proc = run("stitch")
    assert proc.returncode == 2 and "Usage: lazystitch stitch" in (proc.stdout + proc.stderr)


def test_help_shows_defaults_flag_pairs_debug_and_examples():
    top, sub = run("--help"), run("stitch", "--help")
    assert "--debug" in top.stdout
    assert "--resume / --no-resume" in sub.stdout and "[default: (linear)]" in sub.stdout
    assert "Examples:" in sub.stdout and "<bool>" not in sub.stdout


def test_no_flag_turns_off_a_yaml_true(tmp_path, tiles, client):
    out = tmp_path / "m.h5"
    out.write_bytes(b"keep me")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "tiles": {"pattern": tiles.pattern},
                "layout": {"positions": str(tiles.positions_csv)},
                "output": {"path": str(out), "overwrite": True},
            }
        )
    )
    refused(
        run("stitch", cfg, "--no-overwrite", "--scheduler", client.scheduler.address),
        "already exists",
    )
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("tiles:\n  pattern: a_{row}_{col}.tif\ntiles:\n  pattern: b\n", ["line 3", "given twice"]),
        ("tiles:\n  pattern: [unclosed\n", ["c.yaml line 3"]),
        (b"\x89HDF\r\n\x1a\n\x00\x00\xff\xfe", ["c.yaml", "not a YAML text file"]),
    ],
)
def test_yaml_errors_name_the_file_and_line(tmp_path, text, words):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    for cmd in ("stitch", "validate-config"):
        refused(run(cmd, cfg), *words)


def test_validate_config_accepts_a_config_without_output(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"tiles": {"pattern": "t_{row}_{col}.tif"}, "layout": {"grid": "2x2", "overlap": 8}}
        )
    )
    proc = run("validate-config", cfg)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_positions_csv_with_a_byte_order_mark_is_read(tmp_path, tiles, client):
    csv = tiles.positions_csv
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes().replace(b"\n", b"\r\n"))
    out = tmp_path / "m.h5"
    proc = run(*stitch(tiles, out, "--scheduler", client.scheduler.address))
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out) as f:
        np.testing.assert_array_equal(
            f["mosaic"][...], reference_stitch(tiles.tiles, tiles.positions, "linear")
        )


def _silent_server():
    """A port that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []

    def accept():
        while True:
            try:
                held.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return srv


@pytest.mark.parametrize("peer", ["nothing-listens", "never-answers"])
def test_a_scheduler_that_does_not_answer_is_a_bounded_wait(tmp_path, tiles, peer):
    if peer == "nothing-listens":
        srv = socket.socket()  # bound, never listening: connections are refused
        srv.bind(("127.0.0.1", 0))
    else:
        srv = _silent_server()
    port = srv.getsockname()[1]
    t0 = time.monotonic()
    proc = run(
        *stitch(
            tiles,
            tmp_path / "m.h5",
            "--scheduler",
            f"tcp://127.0.0.1:{port}",
            "--connect-timeout",
            "6",
        )
    )
    took = time.monotonic() - t0
    srv.close()
    refused(
        proc,
        f"no dask scheduler answered at tcp://127.0.0.1:{port} within 6 s",
        "--connect-timeout",
    )
    assert took < 40
    assert "waiting for the scheduler" in proc.stderr  # said while waiting
    assert not (tmp_path / "m.h5").exists()


def test_a_virtual_output_without_its_shards_is_not_complete(tmp_path, tiles, client):
    out = tmp_path / "a" / "m.h5"
    out.parent.mkdir()
    proc = run(
        *stitch(tiles, out, "--write-mode", "virtual", "--scheduler", client.scheduler.address)
    )
    assert proc.returncode == 0, proc.stderr
    copy = tmp_path / "b" / "m.h5"
    copy.parent.mkdir()
    copy.write_bytes(out.read_bytes())  # the file alone, without m.h5.shards/
    refused(run("info", copy), "virtual output", "shard files are missing")
    assert run("info", out).returncode == 0


@pytest.mark.parametrize(
    "kind", ["text", "empty", "tiff", "foreign-hdf5", "folder", "no-such-dataset"]
)
def test_info_on_what_is_no_output_says_so(tmp_path, kind):
    p = tmp_path / "x.h5"
    extra = []
    if kind == "text":
        p.write_text("hello")
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "tiff":
        tifffile.imwrite(p, np.zeros((4, 4), np.uint8))
    elif kind == "folder":
        p.mkdir()
    else:
        with h5py.File(p, "w") as f:
            f["data"] = np.zeros(3)
        extra = ["--dataset", "nope"] if kind == "no-such-dataset" else []
    words = {
        "folder": "is a folder",
        "foreign-hdf5": "not a lazystitch output",
        "no-such-dataset": "no dataset 'nope'",
    }
    refused(run("info", p, *extra), str(p), words.get(kind, "not an HDF5 file"))


@pytest.mark.parametrize("content", [b"", b"garbage\x00"])
def test_an_empty_or_garbage_lock_is_stale(tmp_path, tiles, client, content):
    out = tmp_path / "m.h5"
    (tmp_path / "m.h5.lock").write_bytes(content)
    proc = run(*stitch(tiles, out, "--scheduler", client.scheduler.address))
    assert proc.returncode == 0, proc.stderr
    assert "lazystitch: warning: removing a stale lock" in proc.stderr
    assert "warnings.warn" not in proc.stderr and not (tmp_path / "m.h5.lock").exists()


def test_register_report_that_is_a_file_is_refused_before_any_work(tmp_path, tiles):
    report = tmp_path / "report"
    report.write_text("not a folder")
    proc = run(
        "register", "--tiles", tiles.pattern, "--grid", "3x3", "--overlap", "10,16",
        "--report", report, "--out", tmp_path / "p.csv",
    )  # fmt: skip
    refused(proc, "registration.report", "is a file")
    assert "dashboard" not in proc.stderr and not (tmp_path / "p.csv").exists()


def _started(tiles, out, stitch_command, *extra):
    """A CLI stitch run in its own process group, once it has journaled some chunks."""
    proc = subprocess.Popen(
        stitch_command(tiles, out, "--workers", "2", *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    journal = OutputPaths(out).journal
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") > 20:
            return proc
        time.sleep(0.02)
    raise AssertionError(
        f"no progress to interrupt: {proc.poll()} {proc.stderr and proc.stderr.read()}"
    )


@pytest.fixture
def big_tiles(tmp_path):
    return make_tiles(tmp_path / "big", grid=(4, 5), tile_yx=(200, 200), overlap=30, jitter=6)


@pytest.fixture
def long_run(tmp_path):
    """Tiles for a run that is interrupted while it writes (with ``long_command``)."""
    return make_tiles(tmp_path / "big", grid=(5, 6), tile_yx=(200, 200), overlap=30, jitter=6)


@pytest.fixture
def long_command(stitch_command):
    """``stitch_command`` in chunks of 16^2: with ``long_run``'s tiles ~2 s of the run are
    left to interrupt once 20 chunks are journaled (measured; 24^2 of 4 x 5 tiles left 0.3 s
    once gzip chunks were encoded outside HDF5)."""

    def command(*args):
        argv = stitch_command(*args)
        argv[argv.index("--chunks") + 1] = "16,16"
        return argv

    return command


def test_a_stop_python_swallows_in_a_weakref_callback_is_raised_again(monkeypatch):
    """A stop signal that lands in a weakref callback is dropped by Python ("Exception
    ignored"); seen in CI, the run then finished and exited 0 after SIGTERM."""
    import weakref

    from lazystitch import cli

    monkeypatch.setattr(cli, "_stopped_by", [signal.SIGTERM])
    monkeypatch.setattr(sys, "unraisablehook", cli._redeliver)
    previous = signal.signal(signal.SIGTERM, cli._stop)

    class Node:
        pass

    def callback(ref):
        raise KeyboardInterrupt  # what _stop raises, at the moment the callback runs

    node = Node()
    ref = weakref.ref(node, callback)
    try:
        with pytest.raises(KeyboardInterrupt):
            del node  # the callback runs and its KeyboardInterrupt is swallowed ...
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # ... and raised again here
                time.sleep(0.001)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ref() is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_stopped_run_exits_non_zero_with_the_resume_hint(
    tmp_path, long_run, long_command, sig, code
):
    out = tmp_path / "m.h5"
    proc = _started(long_run, out, long_command)
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"lazystitch: interrupted by {signal.Signals(sig).name}; continue with --resume" in err
    assert "Traceback" not in err and not out.exists()
    if sig != signal.SIGINT:  # the resume after a stop is the same whatever stopped it
        return
    done = subprocess.run(
        long_command(long_run, out, "--workers", "2", "--resume"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["chunks_skipped"] > 0
    with h5py.File(out) as f:
        np.testing.assert_array_equal(
            f["mosaic"][...], reference_stitch(long_run.tiles, long_run.positions, "linear")
        )


@pytest.mark.slow
@pytest.mark.parametrize("change", ["tile", "positions"])
def test_resume_after_a_changed_input_names_it_and_keeps_the_partial_run(
    tmp_path, long_run, long_command, change
):
    out = tmp_path / "m.h5"
    proc = _started(long_run, out, long_command)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    tile = long_run.directory / "tile_r002_c003.tif"
    if change == "tile":
        tifffile.imwrite(tile, long_run.tiles[(2, 3)] // 2, photometric="minisblack")
        words = ["tile file", str(tile), "changed"]
    else:
        csv = long_run.positions_csv
        lines = csv.read_text().splitlines()
        row = lines[5].split(",")
        lines[5] = ",".join([*row[:2], str(int(row[2]) + 1), row[3]])
        csv.write_text("\n".join(lines) + "\n")
        words = ["the positions changed"]
    before = {p: p.read_bytes() for p in OutputPaths(out).leftovers()}
    proc = subprocess.run(
        long_command(long_run, out, "--workers", "1", "--resume"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    refused(proc, "cannot resume", *words)
    assert {p: p.read_bytes() for p in OutputPaths(out).leftovers()} == before


@pytest.mark.slow
def test_a_tile_lost_mid_run_is_one_line_with_the_resume_hint(tmp_path, long_run, long_command):
    out = tmp_path / "m.h5"
    proc = _started(long_run, out, long_command)
    lost = long_run.directory / "tile_r004_c005.tif"  # the last tile: read last
    lost.unlink()
    _, err = proc.communicate(timeout=120)
    line = refused(
        subprocess.CompletedProcess(proc.args, proc.returncode, "", err), str(lost), "--resume"
    )
    assert line.startswith("lazystitch: error: tile file") and "Compute Failed" not in err


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB filesystem (tmpfs; needs root), removed after the test."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", disk], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", disk], check=False)


@pytest.mark.slow
def test_a_full_disk_says_so_and_leaves_a_resumable_run(tmp_path, big_tiles, small_disk, client):
    out = small_disk / "m.h5"  # the mosaic needs 1.2 MB
    proc = run(
        *stitch(big_tiles, out, "--chunks", "64,64", "--scheduler", client.scheduler.address)
    )
    refused(proc, f"disk full while writing {out}; free space and run again with --resume")
    assert not out.exists() and OutputPaths(out).partial.exists()
    assert not (small_disk / "m.h5.lock").exists()


def test_a_disk_full_at_start_leaves_no_lock(tmp_path, tiles, small_disk):
    filler = small_disk / "filler"
    with open(filler, "wb") as fh, pytest.raises(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
    out = small_disk / "m.h5"
    refused(run(*stitch(tiles, out, "--workers", "1")), "disk full")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
