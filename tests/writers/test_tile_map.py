"""``--tile-map``: the label array beside the mosaic in every format, with its own pyramid of
every other pixel, written by the same core (exactly once, resumable), read back with readers
that share no code with the writer (h5py, zarr-python, ome-zarr-models, ome-zarr-py,
tifffile)."""

import json

import dask.array as da
import h5py
import numpy as np
import pytest
import tifffile
import zarr

from lazystitch import api
from lazystitch.errors import ConfigError, ResumeMismatchError
from lazystitch.fusion import plan_fusion, tile_map_graph
from lazystitch.io import open_tiles_pattern
from lazystitch.layout import positions_from_csv
from lazystitch.testing import make_tiles, reference_stitch
from lazystitch.writers import write_hdf5


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """4 x 5 tiles with jitter, their tile map computed alone (checked against an oracle in
    tests/fusion/test_tile_map.py), and the mosaic's NumPy reference."""
    s = make_tiles(
        tmp_path_factory.mktemp("tiles"), grid=(4, 5), tile_yx=(70, 90), overlap=(15, 19),
        jitter=5, seed=8,
    )  # fmt: skip
    tiles = open_tiles_pattern(s.pattern, s.positions)
    layout = positions_from_csv(s.positions_csv, tiles.tile_yx)
    labels = tile_map_graph(plan_fusion(layout)).labels.to_array().compute()
    return s, labels, reference_stitch(s.tiles, s.positions, "linear")


def _stitch(s, out, pixel_size=None, **output):
    return api.stitch(
        {
            "tiles": {"pattern": s.pattern, "pixel_size": pixel_size},
            "layout": {"positions": str(s.positions_csv)},
            "output": {
                "path": str(out),
                "chunks": [24, 32],
                "tile_map": True,
                "preview": False,
                **output,
            },
        }
    )


def _read(out):
    """(mosaic level 0, tile map levels, label of each tile) as the file's own readers see it."""
    if out.name.endswith(".tif"):
        with tifffile.TiffFile(out) as tif:
            mosaic, tmap = tif.series
            assert tmap.name == "tile_map" and tmap.axes == "YX"
            return mosaic.asarray(), [lv.asarray() for lv in tmap.levels], None
    if out.is_dir():
        group = zarr.open_group(out, mode="r")
        labels = group["labels/tile_map"]
        attrs = dict(labels.attrs)
        attrs = attrs.get("ome", attrs)
        keys = {
            p["label-value"]: (p["tile_row"], p["tile_col"])
            for p in attrs["image-label"]["properties"]
        }
        names = [d["path"] for d in attrs["multiscales"][0]["datasets"]]
        return group["0"][...], [labels[n][...] for n in names], keys
    with h5py.File(out.with_suffix(".h5")) as f:
        tm = f["tile_map"]
        assert tm.attrs["lazystitch_role"] == "tile_map"
        keys = {n: tuple(k) for n, k in enumerate(tm.attrs["lazystitch_tile_keys"].tolist(), 1)}
        level0 = f["t00000/s00/0/cells"][0].view(np.uint16) if "s00" in f else f["mosaic"][...]
        return level0, [f[n][...] for n in tm.attrs["lazystitch_levels"]], keys


def _compressed(out) -> bool:
    """Whether the tile map's level 0 is deflate/gzip-compressed, as the file says."""
    if out.name.endswith(".tif"):
        with tifffile.TiffFile(out) as tif:
            return tif.series[1].pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    if out.is_dir():
        meta = zarr.open_array(out / "labels" / "tile_map" / "0", mode="r").metadata.to_dict()
        return '"gzip"' in json.dumps(meta, default=str)  # v3 codecs (inside a shard's), v2
    with h5py.File(out.with_suffix(".h5")) as f:
        return f["tile_map"].compression == "gzip"


@pytest.mark.parametrize(
    ("name", "output"),
    [("m.h5", {}), ("m.xml", {}), ("m.ome.zarr", {}),
     ("m.ome.zarr", {"ome_zarr_version": "0.4", "compression": "gzip"}),
     ("m.ome.zarr", {"shard": [2, 2], "compression": "zstd"}), ("m.ome.tif", {})],
    ids=["hdf5", "bdv", "ome-zarr-0.5", "ome-zarr-0.4", "ome-zarr-sharded", "ome-tiff"],
)  # fmt: skip
def test_every_format_holds_the_tile_map_and_its_nearest_levels(
    tmp_path, client, job, name, output
):
    s, labels, reference = job
    res = _stitch(s, tmp_path / name, **output)
    mosaic, levels, keys = _read(tmp_path / name)
    np.testing.assert_array_equal(mosaic, reference)  # the mosaic is what it is without it
    assert len(levels) == len(res.levels) > 2
    for k, level in enumerate(levels):
        assert level.dtype == np.uint8
        np.testing.assert_array_equal(level, labels[:: 2**k, :: 2**k], err_msg=f"level {k}")
    if keys is not None:  # label n names the n-th tile in (row, col) order
        assert keys == dict(enumerate(sorted(s.positions), 1))
    assert res.tile_map
    assert _compressed(tmp_path / name)  # labels are stored deflated whatever the mosaic's


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_ome_zarr_tile_map_is_an_ngff_label_image(tmp_path, client, job, version):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    if version == "0.5":
        from ome_zarr_models.v05.image_label import ImageLabel
        from ome_zarr_models.v05.labels import Labels
    else:
        from ome_zarr_models.v04.image_label import ImageLabel
        from ome_zarr_models.v04.labels import Labels
    s, labels, _ = job
    out = tmp_path / "m.ome.zarr"
    _stitch(s, out, ome_zarr_version=version, pixel_size=0.65)
    group = zarr.open_group(out, mode="r")
    Labels.from_zarr(group["labels"])  # validates
    label_image = ImageLabel.from_zarr(group["labels/tile_map"])
    attrs = label_image.attributes.ome if version == "0.5" else label_image.attributes
    (ms,) = attrs.multiscales
    assert ms.type == "nearest"
    assert [d.coordinateTransformations[0].scale[-1] for d in ms.datasets] == [
        0.65 * 2**k for k in range(len(ms.datasets))
    ]
    nodes = [n for n in Reader(parse_url(out / "labels" / "tile_map"))() if n.load(Label)]
    assert len(nodes) == 1  # ome-zarr-py reads it as a label image (beside its parent image)
    assert len(nodes[0].data) == len(ms.datasets)
    np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), labels)
    np.testing.assert_array_equal(np.asarray(nodes[0].data[1]), labels[::2, ::2])


def test_channels_get_one_tile_map_with_a_leading_axis_of_one(tmp_path, client):
    s = make_tiles(tmp_path / "t", grid=(2, 3), tile_yx=(50, 60), overlap=12, lead=(2,), axes="CYX")
    for out in (tmp_path / "m.xml", tmp_path / "m.ome.zarr"):
        _stitch(s, out)
    with h5py.File(tmp_path / "m.h5") as f:
        tm = f["tile_map"][...]
        assert "t00000/s01/0/cells" in f and tm.shape == (1, *f["t00000/s00/0/cells"].shape[1:])
    group = zarr.open_group(tmp_path / "m.ome.zarr", mode="r")
    assert group["0"].shape[0] == 2
    np.testing.assert_array_equal(group["labels/tile_map/0"][...], tm)
    assert set(np.unique(tm)) == set(range(1, 7))


@pytest.mark.parametrize("mode", ["shards", "virtual"])
def test_shard_write_modes_write_the_same_tile_map(tmp_path, client, job, mode):
    s, labels, reference = job
    tiles = open_tiles_pattern(s.pattern, s.positions)
    layout = positions_from_csv(s.positions_csv, tiles.tile_yx)
    tmap = tile_map_graph(plan_fusion(layout), chunks=(48, 64))
    mosaic = da.from_array(reference, chunks=(48, 64))
    res = write_hdf5(
        mosaic, tmp_path / "m.h5", chunks=(24, 32), mode=mode, shard=(2, 2), tile_map=tmap
    )
    assert res.chunks_written == res.chunks_total
    with h5py.File(tmp_path / "m.h5") as f:
        names = list(f["tile_map"].attrs["lazystitch_levels"])
        assert len(names) == len(res.levels) > 2
        for k, n in enumerate(names):
            np.testing.assert_array_equal(f[n][...], labels[:: 2**k, :: 2**k])
            assert f[n].is_virtual == (mode == "virtual")


def test_resume_refuses_a_partial_run_made_without_the_tile_map(tmp_path, client, job, stop_after):
    s, _, _ = job
    out = tmp_path / "m.h5"
    with pytest.raises(stop_after.error):
        api.stitch(
            {"tiles": {"pattern": s.pattern}, "layout": {"positions": str(s.positions_csv)},
             "output": {"path": str(out), "chunks": [24, 32], "preview": False}},
            progress=stop_after(5),
        )  # fmt: skip
    partial = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ResumeMismatchError, match="arrays"):
        _stitch(s, out, resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == partial  # nothing changed
    with pytest.raises(ConfigError, match=r"output\.dataset: 'tile_map'"):
        _stitch(s, tmp_path / "n.h5", dataset="tile_map")
