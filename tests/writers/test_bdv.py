"""The BigDataViewer output, read back with pybdv (an independent reader) and by hand."""

import xml.etree.ElementTree as ET

import dask.array as da
import h5py
import numpy as np
import pybdv.metadata as bdv_meta
import pybdv.util as bdv_util
import pytest

from lazystitch.errors import ConfigError, OutputExistsError
from lazystitch.writers import describe_output, write_hdf5


@pytest.fixture(scope="module")
def bright():
    """uint16 over the whole range: most 2x2 blocks hold pixels above 32767."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 65536, size=(203, 157), dtype=np.uint16)


def test_bdv_output_reads_back_with_pybdv(oracle_pyramid, tmp_path, client, bright):
    out = tmp_path / "m.xml"
    res = write_hdf5(
        da.from_array(bright, chunks=(64, 80)), out, chunks=(32, 32), pixel_size=0.65, codec="gzip"
    )
    h5 = tmp_path / "m.h5"
    assert res.format == "bdv" and out.exists() and h5.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5", "m.xml"]
    # the XML, as pybdv reads it: z, y, x order
    assert bdv_meta.get_bdv_format(str(out)) == "bdv.hdf5"
    assert bdv_meta.get_data_path(str(out), return_absolute_path=True) == str(h5)
    assert bdv_meta.get_size(str(out), 0) == (1, 203, 157)
    assert bdv_meta.get_resolution(str(out), 0) == [0.65, 0.65, 0.65]
    assert bdv_meta.get_unit(str(out), 0) == "µm"
    (affine,) = bdv_meta.get_affine(str(out), 0).values()  # pybdv looks for <name>, not <Name>
    np.testing.assert_allclose(affine, [0.65, 0, 0, 0, 0, 0.65, 0, 0, 0, 0, 0.65, 0])
    vt = ET.parse(out).getroot().find("ViewRegistrations/ViewRegistration/ViewTransform")
    assert vt.get("type") == "affine" and vt.findtext("Name") == "calibration"
    # the HDF5 layout
    want = oracle_pyramid(bright, (32, 32))
    assert bdv_util.get_number_of_scales(str(h5), 0, 0) == len(want) > 2
    assert bdv_util.get_scale_factors(str(h5), 0) == [
        [1.0, 2.0**k, 2.0**k] for k in range(len(want))
    ]
    with h5py.File(h5, "r") as f:
        np.testing.assert_array_equal(
            f["s00/subdivisions"][...],
            [[min(32, w.shape[1]), min(32, w.shape[0]), 1] for w in want],
        )
        assert "dataType" not in f["s00"].attrs  # uint16 as int16: every BDV version reads it
        for k, ref in enumerate(want):
            ds = f[bdv_util.get_key(True, 0, 0, k)]
            assert ds.dtype == np.int16 and ds.shape == (1, *ref.shape)
            assert ds.compression == "gzip"
            np.testing.assert_array_equal(ds[0].view(np.uint16), ref, err_msg=f"level {k}")
    assert (bright > 32767).mean() > 0.4
    assert describe_output(h5)["state"] == "complete"


def test_bdv_other_pixel_types_carry_data_type_and_unknown_pixel_size(tmp_path, client):
    data = np.linspace(-1, 1, 60 * 50, dtype=np.float32).reshape(60, 50)
    out = tmp_path / "f.xml"
    write_hdf5(da.from_array(data), out, chunks=(16, 16))
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert f["s00"].attrs["dataType"] == "float32"
        np.testing.assert_array_equal(f["t00000/s00/0/cells"][0], data)
    assert bdv_meta.get_unit(str(out), 0) == "pixel"
    assert bdv_meta.get_resolution(str(out), 0) == [1.0, 1.0, 1.0]


def test_bdv_z_stack_is_not_downsampled_in_z(tmp_path, client):
    data = np.arange(3 * 40 * 30, dtype=np.uint16).reshape(3, 40, 30) * 20
    out = tmp_path / "z.xml"
    write_hdf5(da.from_array(data, chunks=(1, 20, 30)), out, chunks=(8, 8), pixel_size=2.0)
    assert bdv_meta.get_size(str(out), 0) == (3, 40, 30)
    with h5py.File(tmp_path / "z.h5", "r") as f:
        assert f["t00000/s00/1/cells"].shape == (3, 20, 15)
        assert f["t00000/s00/0/cells"].chunks == (1, 8, 8)
        np.testing.assert_array_equal(f["s00/resolutions"][1], [2, 2, 1])


def test_bdv_refuses_what_bigdataviewer_cannot_read(tmp_path):
    mosaic = da.zeros((40, 40), dtype=np.uint16, chunks=20)
    with pytest.raises(ConfigError, match="BigDataViewer format takes 'none' or 'gzip' only"):
        write_hdf5(mosaic, tmp_path / "m.xml", codec="lzf")
    with pytest.raises(ConfigError, match=r"2-D .* or 3-D"):
        write_hdf5(da.zeros((2, 2, 40, 40), dtype=np.uint16), tmp_path / "m.xml")
    assert list(tmp_path.iterdir()) == []


def test_bdv_never_overwrites_an_xml_it_was_not_asked_to(tmp_path, client):
    (tmp_path / "m.xml").write_text("<mine/>")
    mosaic = da.zeros((40, 40), dtype=np.uint16, chunks=20)
    with pytest.raises(OutputExistsError, match=r"m\.xml already exists"):
        write_hdf5(mosaic, tmp_path / "m.xml")
    assert (tmp_path / "m.xml").read_text() == "<mine/>" and not (tmp_path / "m.h5").exists()
    write_hdf5(mosaic, tmp_path / "m.xml", overwrite=True)
    assert ET.parse(tmp_path / "m.xml").getroot().tag == "SpimData"


def test_bdv_channels_are_one_setup_each_with_their_names(oracle_pyramid, tmp_path, client):
    rng = np.random.default_rng(5)
    data = rng.integers(0, 65536, size=(3, 150, 131), dtype=np.uint16)
    out = tmp_path / "c.xml"
    write_hdf5(da.from_array(data, chunks=(1, 64, 64)), out, chunks=(32, 32), pixel_size=0.5,
               channels=["DAPI", "GFP", "RFP"])  # fmt: skip
    h5 = tmp_path / "c.h5"
    # pybdv sees three setups of (1, 150, 131), each with the pixel size
    for c in range(3):
        assert bdv_meta.get_size(str(out), c) == (1, 150, 131)
        assert bdv_meta.get_resolution(str(out), c) == [0.5, 0.5, 0.5]
    root = ET.parse(out).getroot()
    setups = root.findall("SequenceDescription/ViewSetups/ViewSetup")
    assert [s.findtext("name") for s in setups] == ["DAPI", "GFP", "RFP"]
    assert [s.findtext("attributes/channel") for s in setups] == ["0", "1", "2"]
    channels = root.findall("SequenceDescription/ViewSetups/Attributes[@name='channel']/Channel")
    assert [c.findtext("name") for c in channels] == ["DAPI", "GFP", "RFP"]
    assert len(root.findall("ViewRegistrations/ViewRegistration")) == 3
    with h5py.File(h5, "r") as f:
        for c in range(3):
            want = oracle_pyramid(data[c], (32, 32))
            assert bdv_util.get_number_of_scales(str(h5), 0, c) == len(want) > 2
            for k, ref in enumerate(want):
                ds = f[bdv_util.get_key(True, 0, c, k)]
                assert ds.shape == (1, *ref.shape)
                np.testing.assert_array_equal(ds[0].view(np.uint16), ref, err_msg=f"{c}/{k}")
    assert describe_output(h5)["state"] == "complete"
    with pytest.raises(ConfigError, match="virtual"):
        write_hdf5(da.from_array(data, chunks=(1, 64, 64)), tmp_path / "v.xml", mode="virtual",
                   channels=["a", "b", "c"])  # fmt: skip
