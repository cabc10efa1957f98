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
