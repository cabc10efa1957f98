"""Corrections inside the tile reads: a user's hook over every tile, flat-/dark-field profiles
given or estimated. Each result is compared with the correction applied in plain NumPy to
every whole tile, then stitched by the reference."""

import os
import sys

import h5py
import numpy as np
import pytest
import skimage.data
import tifffile

from lazystitch import stitch
from lazystitch.testing import make_tiles, reference_stitch

from ..test_cli import _read, one_line_error, run

HOOKS = """
import numpy as np

def halve(tile):  # not idempotent: applied twice, every pixel would differ
    return (tile // 2 + 1000).astype(tile.dtype)

def smooth(tile):
    from scipy import ndimage
    return ndimage.uniform_filter(tile.astype(np.float32), 5)

def wrong_dtype(tile):
    return tile.astype(np.float64)
"""


@pytest.fixture
def hooks(tmp_path, monkeypatch):
    """A module of hooks, importable by the CLI's process (PYTHONPATH) and by this one."""
    folder = tmp_path / "hookmod"
    folder.mkdir()
    (folder / "labhooks.py").write_text(HOOKS)
    monkeypatch.setenv("PYTHONPATH", f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.syspath_prepend(str(folder))
    import labhooks

    yield labhooks
    sys.modules.pop("labhooks", None)


def _camera_tiles(folder, **kw):
    image = skimage.data.camera().astype(np.uint16) * 200 + 500
    return make_tiles(folder, image=image, **kw)


def _stitch_args(s, out, *extra):
    return ["stitch", "--tiles", s.pattern, "--positions", s.positions_csv, "--out", out,
            "--workers", "2", *extra]  # fmt: skip


def test_a_hook_runs_once_on_every_whole_tile_before_fusion(tmp_path, hooks):
    s = _camera_tiles(tmp_path / "t", grid=(3, 3), tile_yx=(96, 112), overlap=(20, 24), jitter=5)
    out = tmp_path / "m.h5"
    proc = run(*_stitch_args(s, out, "--preprocess", "labhooks:halve"))
    assert proc.returncode == 0, proc.stderr
    want = reference_stitch({k: hooks.halve(t) for k, t in s.tiles.items()}, s.positions)
    np.testing.assert_array_equal(_read(out), want)
    with h5py.File(out) as f:
        assert "labhooks:halve" in f["mosaic"].attrs["tile_correction"]


def test_a_hook_that_changes_the_dtype_declares_it(tmp_path, hooks):
    s = _camera_tiles(tmp_path / "t", grid=(2, 3), tile_yx=(96, 112), overlap=(20, 24), jitter=3)
    out = tmp_path / "m.h5"
    proc = run(*_stitch_args(s, out, "--preprocess", "labhooks:smooth",
                             "--preprocess-dtype", "float32"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = _read(out)
    assert got.dtype == np.float32
    want = reference_stitch({k: hooks.smooth(t) for k, t in s.tiles.items()}, s.positions)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-2)

    line = one_line_error(run(*_stitch_args(s, tmp_path / "bad.h5", "--preprocess",
                                            "labhooks:wrong_dtype")))  # fmt: skip
    assert "tile_r000_c000.tif" in line or "tile_r" in line
    assert "float64" in line and "preprocess_dtype" in line
    assert not (tmp_path / "bad.h5").exists()


def test_a_hook_that_cannot_be_imported_is_one_line(tmp_path, hooks):
    s = _camera_tiles(tmp_path / "t", grid=(1, 2), tile_yx=(64, 64), overlap=16)
    line = one_line_error(run(*_stitch_args(s, tmp_path / "m.h5", "--preprocess", "labhooks:nope")))
    assert "tiles.preprocess" in line and "labhooks:nope" in line
    line = one_line_error(run(*_stitch_args(s, tmp_path / "m.h5", "--preprocess-dtype", "f5")))
    assert "preprocess_dtype" in line


def test_a_callable_hook_in_the_api(tmp_path):
    s = make_tiles(tmp_path / "t", grid=(2, 2), tile_yx=(64, 80), overlap=(12, 16), jitter=3)
    log = tmp_path / "calls.txt"  # tasks may be pickled: a closure's list would be a copy

    def invert(tile):
        with open(log, "a") as fh:
            fh.write(f"{tile.shape}\n")
        return (65535 - tile).astype(tile.dtype)

    cfg = {"tiles": {"pattern": s.pattern, "preprocess": invert},
           "layout": {"positions": str(s.positions_csv)},
           "output": {"path": str(tmp_path / "m.h5")}, "cluster": {"workers": 1}}  # fmt: skip
    stitch(cfg)
    want = reference_stitch({k: 65535 - t for k, t in s.tiles.items()}, s.positions)
    np.testing.assert_array_equal(_read(tmp_path / "m.h5"), want)
    calls = log.read_text().splitlines()
    assert len(calls) >= 4 and set(calls) == {"(64, 80)"}  # whole tiles, never windows


def _vignetted(folder, grid=(4, 4), strength=0.45, overlap=(30, 34), jitter=0):
    """Tiles cut from a real photograph, each darkened towards its corners by a smooth falloff
    (not the estimator's polynomial: a Gaussian of the distance from an off-centre point)."""
    clean = _camera_tiles(
        folder / "clean", grid=grid, tile_yx=(120, 136), overlap=overlap, jitter=jitter
    )
    h, w = clean.tile_yx
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((yy - 0.45 * h) / h) ** 2 + ((xx - 0.55 * w) / w) ** 2
    profile = (1 - strength * (1 - np.exp(-r2 / 0.18))).astype(np.float32)
    dark = folder / "vig"
    dark.mkdir()
    tiles = {}
    for (r, c), t in clean.tiles.items():
        v = np.clip(np.rint(t * profile), 0, 65535).astype(np.uint16)
        tifffile.imwrite(dark / f"tile_r{r:03d}_c{c:03d}.tif", v)
        tiles[(r, c)] = v
    return clean, str(dark / "tile_r{row:03d}_c{col:03d}.tif"), tiles, profile


def _mismatch(tiles, positions, tile_yx):
    """Mean relative difference between overlapping tiles over their shared pixels."""
    h, w = tile_yx
    diffs = []
    for (r, c), a in tiles.items():
        for nb in ((r, c + 1), (r + 1, c)):
            if nb not in tiles:
                continue
            (ya, xa), (yb, xb) = positions[(r, c)], positions[nb]
            y0, y1 = max(ya, yb), min(ya, yb) + h
            x0, x1 = max(xa, xb), min(xa, xb) + w
            pa = a[y0 - ya : y1 - ya, x0 - xa : x1 - xa].astype(np.float64)
            pb = tiles[nb][y0 - yb : y1 - yb, x0 - xb : x1 - xb].astype(np.float64)
            diffs.append(np.abs(pa - pb).mean() / (0.5 * (pa + pb).mean()))
    return float(np.mean(diffs))


def _seams(clean, vignetted, estimate):
    """The overlap mismatch of the vignetted tiles, and of the same tiles divided by the
    estimate, measured at their true positions."""
    before = _mismatch(vignetted, clean.positions, clean.tile_yx)
    corrected = {k: _divide(t, estimate) for k, t in vignetted.items()}
    return before, _mismatch(corrected, clean.positions, clean.tile_yx)


def _divide(tile, profile):
    value = tile.astype(np.float32) / np.maximum(profile.astype(np.float32), 1e-6)
    return np.clip(np.rint(value), 0, 65535).astype(np.uint16)


def test_the_true_flatfield_gives_back_the_unvignetted_mosaic(tmp_path):
    clean, pattern, _, profile = _vignetted(tmp_path, grid=(3, 3))
    prof = tmp_path / "flat.tif"
    tifffile.imwrite(prof, profile)
    out = tmp_path / "m.h5"
    proc = run("stitch", "--tiles", pattern, "--positions", clean.positions_csv,
               "--flatfield", prof, "--out", out, "--workers", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = _read(out).astype(np.int64)
    want = reference_stitch(clean.tiles, clean.positions).astype(np.int64)
    assert np.abs(got - want).max() <= 2  # the rounding of vignetting, then of correction
    assert np.abs(got - want).mean() < 0.5


def test_a_darkfield_is_subtracted_before_the_division(tmp_path):
    s = _camera_tiles(tmp_path / "t", grid=(2, 2), tile_yx=(64, 80), overlap=(12, 16))
    offset = np.full(s.tile_yx, 300, np.float32)
    offset[:, :40] = 350
    folder = tmp_path / "raw"
    folder.mkdir()
    for (r, c), t in s.tiles.items():
        tifffile.imwrite(folder / f"t_{r}_{c}.tif", (t + offset).astype(np.uint16))
    tifffile.imwrite(tmp_path / "dark.tif", offset)
    out = tmp_path / "m.h5"
    proc = run("stitch", "--tiles", folder / "t_{row}_{col}.tif", "--positions",
               s.positions_csv, "--darkfield", tmp_path / "dark.tif", "--out", out,
               "--workers", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(_read(out), reference_stitch(s.tiles, s.positions))


def test_an_estimate_from_positions_some_px_off_still_cuts_the_seams(tmp_path):
    # a 3 x 4 grid whose tiles sit up to 5 px off the nominal grid the estimate starts from:
    # its overlaps are aligned first (14x here; compared where the grid puts them, ~4x)
    clean, pattern, vignetted, _ = _vignetted(tmp_path, grid=(3, 4), overlap=(24, 28), jitter=5)
    out = tmp_path / "m.h5"
    proc = run("stitch", "--tiles", pattern, "--grid", "3x4", "--overlap", "24,28",
               "--flatfield", "estimate", "--out", out, "--workers", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    before, after = _seams(clean, vignetted, tifffile.imread(tmp_path / "m.flatfield.tif"))
    assert before > 8 * after, (before, after)  # unaligned overlaps gave ~4x


@pytest.mark.slow
def test_an_estimated_flatfield_cuts_the_seams_and_is_saved_for_reuse(tmp_path):
    clean, pattern, vignetted, true_profile = _vignetted(tmp_path, grid=(4, 4))
    out = tmp_path / "m.h5"
    args = ["stitch", "--tiles", pattern, "--positions", clean.positions_csv, "--flatfield",
            "estimate", "--out", out, "--workers", "2"]  # fmt: skip
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    saved = tmp_path / "m.flatfield.tif"
    estimate = tifffile.imread(saved)
    assert estimate.shape == clean.tile_yx and abs(estimate.mean() - 1) < 1e-3
    before = _mismatch(vignetted, clean.positions, clean.tile_yx)
    corrected = {k: _divide(t, estimate) for k, t in vignetted.items()}
    after = _mismatch(corrected, clean.positions, clean.tile_yx)
    assert before > 3 * after, (before, after)
    # the mosaic is the reads corrected by the saved profile, stitched
    np.testing.assert_array_equal(_read(out), reference_stitch(corrected, clean.positions))
    # the estimate is an output: kept unless asked; a resumed run reuses it
    (tmp_path / "m.h5").unlink()
    line = one_line_error(run(*args))
    assert "m.flatfield.tif" in line and "--overwrite" in line
    tifffile.imwrite(saved, true_profile)  # a resumed run uses the saved profile, as it is
    proc = run(*args, "--resume")
    assert proc.returncode == 0, proc.stderr
    want = reference_stitch({k: _divide(t, true_profile) for k, t in vignetted.items()},
                            clean.positions)  # fmt: skip
    np.testing.assert_array_equal(_read(out), want)


def test_a_profile_of_another_shape_is_one_line(tmp_path):
    s = _camera_tiles(tmp_path / "t", grid=(1, 2), tile_yx=(64, 64), overlap=16)
    tifffile.imwrite(tmp_path / "flat.tif", np.ones((32, 32), np.float32))
    line = one_line_error(run(*_stitch_args(s, tmp_path / "m.h5", "--flatfield",
                                            tmp_path / "flat.tif")))  # fmt: skip
    assert "tiles.flatfield" in line and "(32, 32)" in line and "(64, 64)" in line
    line = one_line_error(run(*_stitch_args(s, tmp_path / "m.h5", "--flatfield",
                                            tmp_path / "none.tif")))  # fmt: skip
    assert "none.tif" in line and "not a file" in line


def test_the_estimate_subtracts_a_given_darkfield_first(tmp_path):
    clean, _, vignetted, _ = _vignetted(tmp_path, grid=(3, 3))
    folder = tmp_path / "dark"
    folder.mkdir()
    offset = np.full(clean.tile_yx, 12000, np.float32)  # a camera offset, half the mean signal
    for (r, c), t in vignetted.items():
        tifffile.imwrite(folder / f"t_{r}_{c}.tif", (t + offset).astype(np.uint16))
    tifffile.imwrite(tmp_path / "offset.tif", offset)
    out = tmp_path / "m.h5"
    proc = run("stitch", "--tiles", folder / "t_{row}_{col}.tif", "--positions",
               clean.positions_csv, "--darkfield", tmp_path / "offset.tif", "--flatfield",
               "estimate", "--out", out, "--workers", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    before, after = _seams(clean, vignetted, tifffile.imread(tmp_path / "m.flatfield.tif"))
    assert before > 3 * after, (before, after)
