"""Tiles with a channel axis: registered on the one channel asked for, every channel fused
with the positions found, channel names in the output."""

import csv
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest
import skimage.data
import tifffile

from lazystitch.testing import make_registration_tiles, reference_stitch, write_positions_csv

from ..test_cli import one_line_error, run

NAMES = ["noise", "content", "inverted"]


@pytest.fixture(scope="module")
def acquisition(tmp_path_factory):
    """3 x 3 tiles of a real photograph at hidden sub-pixel offsets, once as single-channel
    TIFFs and once as 3-channel OME-TIFFs: channel 0 pure noise, 1 the content, 2 its negative."""
    d = tmp_path_factory.mktemp("channels")
    image = skimage.data.camera().astype(np.float64)
    s = make_registration_tiles(d / "one", grid=(3, 3), tile_yx=(160, 176), jitter=6, image=image)
    rng = np.random.default_rng(3)
    (d / "three").mkdir()
    tiles = {}
    for key in s.true_positions:
        one = tifffile.imread(s.pattern.format(row=key[0], col=key[1]))
        noise = rng.integers(90, 110, size=one.shape).astype(np.uint16)
        tiles[key] = np.stack([noise, one, 65535 - one])
        tifffile.imwrite(
            d / "three" / f"t_{key[0]}_{key[1]}.ome.tif",
            tiles[key],
            metadata={"axes": "CYX", "Channel": {"Name": NAMES}},
        )
    return s, str(d / "three" / "t_{row}_{col}.ome.tif"), tiles


def _grid(s):
    return ["--grid", "3x3", "--overlap", ",".join(map(str, s.overlap_px)), "--workers", "2"]


def _positions(path):
    with open(path) as fh:
        return {(int(r["row"]), int(r["col"])): (float(r["y"]), float(r["x"]))
                for r in csv.DictReader(fh)}  # fmt: skip


def test_registered_on_one_channel_every_channel_is_fused_with_its_positions(tmp_path, acquisition):
    s, three, tiles = acquisition
    one_csv, three_csv = tmp_path / "one.csv", tmp_path / "three.csv"
    proc = run("register", "--tiles", s.pattern, *_grid(s), "--out", one_csv)
    assert proc.returncode == 0, proc.stderr
    proc = run("register", "--tiles", three, *_grid(s), "--register-channel", "content",
               "--out", three_csv)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # the same positions as the single-channel case, to the last digit
    assert _positions(three_csv) == _positions(one_csv)
    by_index = tmp_path / "by_index.csv"
    proc = run(
        "register", "--tiles", three, *_grid(s), "--register-channel", "1", "--out", by_index
    )
    assert proc.returncode == 0 and _positions(by_index) == _positions(one_csv), proc.stderr

    out = tmp_path / "m.h5"
    proc = run("stitch", "--tiles", three, "--positions", three_csv, "--out", out,
               "--workers", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    positions = _positions(three_csv)
    with h5py.File(out) as f:
        mosaic = f["mosaic"][...]
        assert list(f["mosaic"].attrs["channels"]) == NAMES
        assert f["mosaic"].attrs["axes"] == "cyx"
    assert mosaic.shape[0] == 3
    for c in range(3):  # sub-pixel positions: interpolation may round a tie the other way
        want = reference_stitch({k: t[c] for k, t in tiles.items()}, positions)
        diff = np.abs(mosaic[c].astype(np.int64) - want)
        assert diff.max() <= 1 and np.count_nonzero(diff) < 1e-4 * diff.size


def test_the_noise_channel_does_not_register_and_an_unknown_channel_is_named(tmp_path, acquisition):
    s, three, _ = acquisition
    # the default is the first channel: here pure noise, so the run must not pass as a success
    proc = run("register", "--tiles", three, *_grid(s), "--out", tmp_path / "p.csv")
    assert proc.returncode != 0
    assert not (tmp_path / "p.csv").exists()
    line = one_line_error(run("register", "--tiles", three, *_grid(s), "--register-channel",
                              "DAPI", "--out", tmp_path / "p.csv"))  # fmt: skip
    assert "registration.channel" in line and "'DAPI'" in line
    assert all(f"'{n}'" in line for n in NAMES)
    line = one_line_error(run("register", "--tiles", s.pattern, *_grid(s), "--register-channel",
                              "1", "--out", tmp_path / "p.csv"))  # fmt: skip
    assert "no channel axis" in line


def test_a_bdv_output_has_a_setup_per_named_channel(tmp_path, acquisition):
    s, three, _ = acquisition
    h5, xml = tmp_path / "m.h5", tmp_path / "b.xml"
    positions = write_positions_csv(tmp_path / "p.csv", s.true_positions)
    for out in (h5, xml):
        proc = run("stitch", "--tiles", three, "--positions", positions, "--out", out)
        assert proc.returncode == 0, proc.stderr
    with h5py.File(h5) as a, h5py.File(tmp_path / "b.h5") as b:
        for c in range(3):
            stored = b[f"t00000/s{c:02d}/0/cells"][0].view(np.uint16)
            np.testing.assert_array_equal(stored, a["mosaic"][c])
    assert [e.text for e in ET.parse(xml).getroot().iter("name")][:3] == NAMES


def test_channels_in_separate_files_are_stacked_by_a_channel_field(tmp_path, acquisition):
    s, three, tiles = acquisition
    folder = tmp_path / "split"
    folder.mkdir()
    for (r, c), t in tiles.items():
        for name, plane in zip(NAMES, t, strict=True):
            tifffile.imwrite(folder / f"t_{r}_{c}_{name}.tif", plane)
    split = str(folder / "t_{row}_{col}_{channel}.tif")
    csv_path = tmp_path / "p.csv"
    proc = run("register", "--tiles", split, *_grid(s), "--channels", ",".join(NAMES),
               "--register-channel", "content", "--out", csv_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    outs = {}
    for what, pattern, extra in (("files", three, []), ("named", split, ["--channels",
                                 ",".join(NAMES)]), ("found", split, [])):  # fmt: skip
        outs[what] = tmp_path / f"{what}.h5"
        proc = run("stitch", "--tiles", pattern, *extra, "--positions", csv_path, "--out",
                   outs[what], "--workers", "2")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    with h5py.File(outs["files"]) as a, h5py.File(outs["named"]) as b:
        np.testing.assert_array_equal(a["mosaic"][...], b["mosaic"][...])
        assert list(b["mosaic"].attrs["channels"]) == NAMES
    with h5py.File(outs["files"]) as a, h5py.File(outs["found"]) as b:  # found: by name
        assert list(b["mosaic"].attrs["channels"]) == sorted(NAMES)
        order = [NAMES.index(n) for n in sorted(NAMES)]
        np.testing.assert_array_equal(a["mosaic"][...][order], b["mosaic"][...])

    (folder / "t_1_2_inverted.tif").unlink()
    line = one_line_error(run("stitch", "--tiles", split, "--positions", csv_path, "--out",
                              tmp_path / "bad.h5"))  # fmt: skip
    assert "t_1_2_inverted.tif" in line and "does not exist" in line
