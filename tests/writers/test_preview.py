"""The picture every stitch run leaves beside its output (OUT.preview.png)."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from lazystitch.testing import make_tiles

OUTLINE = (255, 200, 0)


def _stitch(tiles, out, *extra):
    argv = [
        sys.executable, "-m", "lazystitch", "stitch", "--tiles", tiles.pattern, "--positions",
        str(tiles.positions_csv), "--out", str(out), "--chunks", "512,512", "--workers", "1",
        "--quiet", *extra,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A mosaic wider than 1024 px: the picture comes from level 1 (at most 1024 px)."""
    return make_tiles(
        tmp_path_factory.mktemp("preview") / "tiles", grid=(3, 4), tile_yx=(400, 420),
        overlap=40, jitter=5,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", ["m.h5", "m.ome.zarr"])
def test_the_preview_shows_the_mosaic_and_every_tile(tmp_path, big, oracle_pyramid, name):
    out = tmp_path / name
    res = _stitch(big, out)
    assert res.returncode == 0, res.stderr
    png = tmp_path / f"{name}.preview.png"
    picture = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
    level1 = oracle_pyramid(big.image, (512, 512), levels=2)[1]
    assert max(big.image.shape) > 1024 and picture.shape[:2] == level1.shape
    outline = np.all(picture == OUTLINE, axis=-1)
    grey = (picture[..., 0] == picture[..., 1]) & (picture[..., 1] == picture[..., 2])
    # every tile's outline is drawn where the layout puts it (its top-left corner)
    for y, x in big.positions.values():
        assert outline[y // 2, x // 2 : x // 2 + 40].mean() > 0.5
    # elsewhere the picture is the mosaic's level 1, stretched: the same up to the stretch
    sel = grey & ~outline & (level1 > 0)
    r = np.corrcoef(picture[..., 0][sel], level1[sel])[0, 1]
    assert r > 0.99
    assert grey.mean() > 0.9  # outlines and labels are a small part of the picture


@pytest.mark.slow
def test_the_preview_can_be_moved_or_left_out_and_is_never_clobbered(tmp_path, big):
    res = _stitch(big, tmp_path / "a.h5", "--no-preview")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]
    custom = tmp_path / "pics" / "b.png"
    custom.parent.mkdir()
    assert _stitch(big, tmp_path / "b.h5", "--preview-path", str(custom)).returncode == 0
    assert custom.exists() and not (tmp_path / "b.h5.preview.png").exists()
    (tmp_path / "c.h5.preview.png").write_bytes(b"my picture")
    res = _stitch(big, tmp_path / "c.h5")
    assert res.returncode == 1 and "c.h5.preview.png already exists" in res.stderr
    assert not (tmp_path / "c.h5").exists()  # refused before any work
    assert (tmp_path / "c.h5.preview.png").read_bytes() == b"my picture"


def _full_level0(out):
    """Level 0 of an output, read whole by the format's own library (not lazystitch)."""
    name = out.name
    if name.endswith(".ome.zarr"):
        import zarr

        return np.asarray(zarr.open_group(out, mode="r")["0"][...])
    if name.endswith(".ome.tif"):
        import tifffile

        return tifffile.imread(out)
    import h5py

    with h5py.File(out.with_suffix(".h5") if name.endswith(".xml") else out, "r") as f:
        data = f["t00000/s00/0/cells"][0] if name.endswith(".xml") else f["mosaic"][...]
    return data.view(np.uint16) if data.dtype == np.int16 else data


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "codec"),
    [("m.h5", "none"), ("m.h5", "gzip"), ("m.ome.zarr", "gzip"), ("m.ome.tif", "none"),
     ("m.xml", "none")],
)  # fmt: skip
def test_a_run_without_a_pyramid_previews_every_other_pixel_not_the_whole_level(
    tmp_path, big, name, codec
):
    out = tmp_path / name
    res = _stitch(big, out, "--no-pyramid", "--compression", codec)
    assert res.returncode == 0, res.stderr
    picture = np.asarray(Image.open(tmp_path / f"{name}.preview.png").convert("RGB"))
    mosaic = _full_level0(out)
    assert max(mosaic.shape) > 1024 and picture.shape[:2] == mosaic[::2, ::2].shape
    outline = np.all(picture == OUTLINE, axis=-1)
    for y, x in big.positions.values():
        assert outline[y // 2, x // 2 : x // 2 + 40].mean() > 0.5
    grey = (picture[..., 0] == picture[..., 1]) & (picture[..., 1] == picture[..., 2])
    sel = grey & ~outline & (mosaic[::2, ::2] > 0)
    assert np.corrcoef(picture[..., 0][sel], mosaic[::2, ::2][sel])[0, 1] > 0.99
    # steps that do not divide the chunks (512 px) nor the tiles (TIFF: 512 px) still take
    # exactly every step-th pixel
    from lazystitch._preview import read_level

    fmt = {"m.h5": "hdf5", "m.ome.zarr": "ome-zarr", "m.ome.tif": "ome-tiff", "m.xml": "bdv"}
    for step in (3, 7, 600):
        np.testing.assert_array_equal(read_level(out, fmt[name], 0, step), mosaic[::step, ::step])
