"""The pyramidal OME-TIFF output, read back with tifffile and its OME-XML with ome-types."""

import dask.array as da
import numpy as np
import ome_types
import pytest
import tifffile

from lazystitch.errors import ConfigError, OutputExistsError, PartialOutputError
from lazystitch.writers import OutputPaths, describe_output, write_hdf5
from lazystitch.writers._format_ometiff import OmeTiff


@pytest.fixture(scope="module")
def two_channels():
    rng = np.random.default_rng(5)
    return rng.integers(0, 65536, size=(2, 1100, 700), dtype=np.uint16)


def _write(a, out, **kw):
    kw.setdefault("chunks", (128, 128))
    return write_hdf5(da.from_array(a, chunks=(1, 256, 256)), out, **kw)


def test_ome_tiff_levels_are_subifds_with_pixel_size_and_channels(
    tmp_path, oracle_pyramid, two_channels
):
    out = tmp_path / "m.ome.tif"
    res = _write(two_channels, out, pixel_size=0.65, channels=["DAPI", "GFP"], codec="gzip:6")
    assert res.format == "ome-tiff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ome.tif"]  # the pyramid is gone
    want = oracle_pyramid(two_channels, (128, 128))
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome and tif.is_bigtiff
        series = tif.series[0]
        assert series.axes == "CYX" and len(series.levels) == len(want) > 3
        for k, ref in enumerate(want):
            np.testing.assert_array_equal(series.levels[k].asarray(), ref, err_msg=f"level {k}")
        first = tif.pages.first
        assert first.is_tiled and (first.tilelength, first.tilewidth) == (512, 512)
        assert first.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert len(first.tags["SubIFDs"].value) == len(want) - 1
        ome = ome_types.from_xml(tif.ome_metadata)
    (image,) = ome.images
    px = image.pixels
    assert (px.size_c, px.size_y, px.size_x) == (2, 1100, 700)
    assert px.physical_size_x == pytest.approx(0.65) and px.physical_size_x_unit.value == "µm"
    assert px.physical_size_y == pytest.approx(0.65)
    assert [c.name for c in px.channels] == ["DAPI", "GFP"]
    info = describe_output(out)
    assert (info["state"], info["format"], info["axes"]) == ("complete", "ome-tiff", "CYX")
    assert info["channels"] == ["DAPI", "GFP"] and info["pixel_size_um"] == pytest.approx(0.65)
    assert [lv["shape"] for lv in info["levels"]] == [list(w.shape) for w in want]


def test_ome_tiff_compression_other_than_gzip_is_refused(tmp_path, two_channels):
    with pytest.raises(ConfigError, match="zstd"):
        _write(two_channels, tmp_path / "m.ome.tif", codec="zstd")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_conversion_resumes_from_the_complete_pyramid(
    tmp_path, monkeypatch, two_channels
):
    out = tmp_path / "m.ome.tif"
    real = OmeTiff.convert

    def dies_half_way(self, levels, dataset, dst, *args):
        dst.write_bytes(b"II*\0 half a tiff")
        raise KeyboardInterrupt

    monkeypatch.setattr(OmeTiff, "convert", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        _write(two_channels, out)
    paths = OutputPaths(out)
    assert not out.exists() and not paths.partial.exists()  # no torn TIFF left
    assert paths.leftovers() == [paths.levels]  # the complete pyramid stays
    assert describe_output(out)["state"] == "partial"
    monkeypatch.setattr(OmeTiff, "convert", real)
    with pytest.raises(PartialOutputError, match="--resume"):
        _write(two_channels, out)
    res = _write(two_channels, out, resume=True)
    assert res.chunks_written == 0 and res.chunks_skipped == res.chunks_total  # no re-fusing
    with tifffile.TiffFile(out) as tif:
        np.testing.assert_array_equal(tif.series[0].levels[0].asarray(), two_channels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ome.tif"]
    again = _write(two_channels, out, resume=True)  # complete with these settings: nothing to do
    assert again.chunks_written == 0 and out.stat().st_size > two_channels.nbytes // 2
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):  # other settings: not this one
        _write(two_channels, out, resume=True, pixel_size=0.5)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "m.ome.tif"
    ]
