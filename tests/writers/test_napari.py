"""The napari reader, through npe2's own plugin machinery (no display, no napari)."""

import dask.array as da
import h5py
import numpy as np
import pytest
from npe2 import PluginManager, io_utils

from lazystitch.writers import write_hdf5

CHANNELS = ["DAPI", "GFP"]


def _refuse(self, *args, **kwargs):
    raise AssertionError(f"pixels of {self.name} read while the layer was built")


@pytest.fixture(scope="module")
def bright():
    rng = np.random.default_rng(3)
    return rng.integers(0, 65536, size=(2, 300, 260), dtype=np.uint16)


def test_the_manifest_is_discovered_by_npe2():
    pm = PluginManager.instance()
    pm.discover()
    assert "lazystitch" in pm._manifests
    (reader,) = [r for r in pm.iter_compatible_readers(["m.h5"]) if r.plugin_name == "lazystitch"]
    assert reader.command == "lazystitch.get_reader"


@pytest.mark.parametrize("out_name", ["m.h5", "m.xml"], ids=["hdf5", "bdv"])
def test_output_opens_as_a_lazy_multiscale_layer(
    tmp_path, monkeypatch, oracle_pyramid, bright, out_name
):
    out = tmp_path / out_name
    write_hdf5(
        da.from_array(bright, chunks=(1, 128, 128)), out, chunks=(64, 64), pixel_size=0.65,
        channels=CHANNELS, codec="gzip",
    )  # fmt: skip
    PluginManager.instance().discover()  # what napari does when it starts
    monkeypatch.setattr(h5py.Dataset, "__getitem__", _refuse)  # building reads no pixel
    monkeypatch.setattr(h5py.Dataset, "read_direct", _refuse)
    ((levels, meta, kind),) = io_utils.read([str(out)], stack=False, plugin_name="lazystitch")
    monkeypatch.undo()
    want = oracle_pyramid(bright, (64, 64))
    assert kind == "image" and meta["multiscale"] and len(levels) == len(want) > 2
    assert meta["channel_axis"] == 0 and meta["name"] == CHANNELS
    assert meta["scale"] == (0.65, 0.65)
    for c, limits in enumerate(meta["contrast_limits"]):  # the data's 0.1 / 99.9 percentiles
        values = bright[c][bright[c] > 0]
        assert limits == list(np.percentile(values, [0.1, 99.9], method="nearest"))
    for k, ref in enumerate(want):
        assert isinstance(levels[k], da.Array) and levels[k].dtype == np.uint16
        np.testing.assert_array_equal(levels[k].compute(), ref, err_msg=f"level {k}")
    assert (bright > 32767).mean() > 0.4  # BDV's int16 bits come back as uint16


def test_other_files_are_left_to_other_readers(tmp_path):
    from lazystitch._napari import get_reader

    plain = tmp_path / "theirs.h5"
    with h5py.File(plain, "w") as f:
        f["image"] = np.zeros((4, 4))
    assert get_reader(str(plain)) is None
    assert get_reader(str(tmp_path / "missing.h5")) is None
    assert get_reader(str(tmp_path / "m.ome.zarr")) is None


@pytest.mark.parametrize("out_name", ["m.h5", "m.xml"], ids=["hdf5", "bdv"])
def test_the_tile_map_opens_as_a_lazy_labels_layer(tmp_path, monkeypatch, out_name):
    from lazystitch.fusion import plan_fusion, tile_map_graph
    from lazystitch.io import open_tiles_pattern
    from lazystitch.layout import positions_from_csv
    from lazystitch.testing import make_tiles

    s = make_tiles(
        tmp_path / "t", grid=(2, 3), tile_yx=(60, 70), overlap=14, jitter=4, lead=(3,), seed=2
    )
    tiles = open_tiles_pattern(s.pattern, s.positions)
    plan = plan_fusion(positions_from_csv(s.positions_csv, tiles.tile_yx))
    tmap = tile_map_graph(plan, lead=1, chunks=(64, 64))
    labels = tmap.labels.to_array().compute()[0]
    out = tmp_path / out_name
    mosaic = da.from_array(s.image, chunks=(1, 64, 64))
    write_hdf5(mosaic, out, chunks=(32, 32), pixel_size=0.5, tile_map=tmap)
    PluginManager.instance().discover()
    monkeypatch.setattr(h5py.Dataset, "__getitem__", _refuse)  # building reads no pixel
    monkeypatch.setattr(h5py.Dataset, "read_direct", _refuse)
    (image, (levels, meta, kind)) = io_utils.read([str(out)], stack=False, plugin_name="lazystitch")
    monkeypatch.undo()
    assert image[2] == "image" and len(image[0]) == len(levels) > 1
    assert image[0][0].shape == s.image.shape  # the z-stack's levels, the tile map not among them
    assert kind == "labels" and meta["multiscale"] and meta["scale"] == (0.5, 0.5)
    assert meta["features"]["tile"][1:] == [f"({r}, {c})" for r, c in sorted(s.positions)]
    for k, level in enumerate(levels):  # 2-D: napari shows it over every z
        assert isinstance(level, da.Array) and level.dtype == np.uint8
        np.testing.assert_array_equal(level.compute(), labels[:: 2**k, :: 2**k])
