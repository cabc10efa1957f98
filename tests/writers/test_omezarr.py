"""The OME-Zarr output, validated with ome-zarr-models and read back with zarr-python and
ome-zarr-py's own reader (neither shares code with the writer)."""

import dask.array as da
import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr_models.v04.image import Image as Image04
from ome_zarr_models.v05.image import Image as Image05

from lazystitch.errors import ConfigError, OutputExistsError, OutputTargetError
from lazystitch.writers import describe_output, write_hdf5

CHANNELS = ["DAPI", "GFP", "RFP"]


@pytest.fixture(scope="module")
def three_channels():
    """uint16 over the whole range, 3 channels, edges that are not multiples of the chunks."""
    rng = np.random.default_rng(11)
    return rng.integers(0, 65536, size=(3, 203, 157), dtype=np.uint16)


@pytest.mark.parametrize(
    ("version", "shard", "codec"),
    [("0.5", None, "none"), ("0.5", (2, 2), "zstd"), ("0.4", None, "gzip:6"),
     ("0.5", None, "blosc")],
    ids=["0.5", "0.5-sharded-zstd", "0.4-gzip", "0.5-blosc"],
)  # fmt: skip
def test_ome_zarr_validates_and_every_reader_sees_the_pyramid(
    tmp_path, client, oracle_pyramid, three_channels, version, shard, codec
):
    out = tmp_path / "m.ome.zarr"
    res = write_hdf5(
        da.from_array(three_channels, chunks=(1, 64, 80)),
        out,
        chunks=(32, 32),
        codec=codec,
        pixel_size=0.65,
        channels=CHANNELS,
        shard=shard,
        ome_zarr_version=version,
    )
    assert res.format == "ome-zarr" and out.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ome.zarr"]  # nothing left beside
    want = oracle_pyramid(three_channels, (32, 32))
    assert len(want) > 2
    group = zarr.open_group(out, mode="r")
    assert group.metadata.zarr_format == (3 if version == "0.5" else 2)
    image = (Image05 if version == "0.5" else Image04).from_zarr(group)  # validates
    ome = image.attributes.ome if version == "0.5" else image.attributes
    (ms,) = ome.multiscales
    if version == "0.4":
        assert ms.version == "0.4"  # a MUST of 0.4 (0.5 has it once, on the "ome" block)
    assert [a.name for a in ms.axes] == ["c", "y", "x"]
    assert [a.type for a in ms.axes] == ["channel", "space", "space"]
    assert ms.axes[2].unit == "micrometer" and ms.axes[0].unit is None
    for k, ds in enumerate(ms.datasets):
        scale, *shift = ds.coordinateTransformations
        assert scale.scale == pytest.approx([1, 0.65 * 2**k, 0.65 * 2**k])
        if k:  # block means: pixel centres stay on the mosaic's
            assert shift[0].translation == pytest.approx([0, *[0.325 * (2**k - 1)] * 2])
    # every level, through zarr-python and through ome-zarr-py's reader
    assert sorted(group.array_keys(), key=int) == [str(k) for k in range(len(want))]
    for k, ref in enumerate(want):
        arr = group[str(k)]
        np.testing.assert_array_equal(arr[...], ref, err_msg=f"level {k}")
        if version == "0.5":
            assert arr.metadata.dimension_names == ("c", "y", "x")
        if shard:  # 2 x 2 storage chunks (fewer where the level has fewer)
            inner = tuple(min(32, s) for s in ref.shape[1:])
            assert arr.chunks == (1, *inner)
            assert arr.shards == (
                1,
                *(min(2, -(-s // c)) * c for s, c in zip(ref.shape[1:], inner, strict=True)),
            )
    (node, *_) = Reader(parse_url(str(out)))()
    assert len(node.data) == len(want)
    for k, ref in enumerate(want):
        np.testing.assert_array_equal(np.asarray(node.data[k]), ref, err_msg=f"reader level {k}")
    omero = (group.attrs["ome"] if version == "0.5" else group.attrs.asdict())["omero"]
    assert [c["label"] for c in omero["channels"]] == CHANNELS
    for c, ch in enumerate(omero["channels"]):
        window = [ch["window"]["start"], ch["window"]["end"]]
        values = three_channels[c][three_channels[c] > 0]  # level 0: small enough to read
        assert window == list(np.percentile(values, [0.1, 99.9], method="nearest"))
        assert ch["window"]["max"] == 65535
        assert len(ch["color"]) == 6
    info = describe_output(out)
    assert info["state"] == "complete" and info["format"].startswith(f"ome-zarr {version}")
    assert info["channels"] == CHANNELS and info["pixel_size_um"] == 0.65
    assert [lv["shape"] for lv in info["levels"]] == [list(w.shape) for w in want]
    assert node.metadata["channel_names"] == CHANNELS  # as napari-ome-zarr names the layers
    assert [list(w) for w in node.metadata["contrast_limits"]] == [
        [c["window"]["start"], c["window"]["end"]] for c in omero["channels"]
    ]


def test_ome_zarr_without_pixel_size_has_unitless_axes(tmp_path):
    a = np.arange(90 * 70, dtype=np.float32).reshape(90, 70)
    out = tmp_path / "plain.zarr"
    write_hdf5(da.from_array(a, chunks=(40, 40)), out, chunks=(32, 32))
    group = zarr.open_group(out, mode="r")
    (ms,) = Image05.from_zarr(group).attributes.ome.multiscales
    assert [(x.name, x.unit) for x in ms.axes] == [("y", None), ("x", None)]
    assert ms.datasets[1].coordinateTransformations[0].scale == [2.0, 2.0]
    np.testing.assert_array_equal(group["0"][...], a)


def _write(a, out, **kw):
    return write_hdf5(da.from_array(a, chunks=(64, 64)), out, chunks=(32, 32), **kw)


def test_ome_zarr_bad_settings_are_refused_before_any_write(tmp_path):
    a = np.ones((100, 100), dtype=np.uint16)
    out = tmp_path / "m.ome.zarr"
    with pytest.raises(ConfigError, match="lzf"):
        _write(a, out, codec="lzf")
    with pytest.raises(ConfigError, match=r"0\.4 is Zarr v2, which has no sharding"):
        _write(a, out, ome_zarr_version="0.4", shard=(2, 2))
    with pytest.raises(ConfigError, match="ome_zarr_version"):
        _write(a, out, ome_zarr_version="0.6")
    with pytest.raises(ConfigError, match="write_mode: shards"):
        _write(a, out, mode="shards")
    assert not out.exists()


def test_ome_zarr_never_writes_over_what_it_did_not_write(tmp_path):
    a = np.full((100, 100), 7, dtype=np.uint16)
    foreign = tmp_path / "theirs.ome.zarr"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputTargetError, match="did not write"):
        _write(a, foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"
    a_file = tmp_path / "file.zarr"
    a_file.write_text("x")
    with pytest.raises(OutputTargetError, match="is a file"):
        _write(a, a_file)
    out = tmp_path / "m.ome.zarr"
    _write(a, out)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        _write(a + 1, out)
    np.testing.assert_array_equal(zarr.open_group(out, mode="r")["0"][...], a)
    _write(a + 1, out, overwrite=True)
    np.testing.assert_array_equal(zarr.open_group(out, mode="r")["0"][...], a + 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "file.zarr",
        "m.ome.zarr",
        "theirs.ome.zarr",
    ]
