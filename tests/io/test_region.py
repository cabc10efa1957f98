"""Partial reads: the window's pixels, whatever the TIFF layout, and only the bytes needed."""

import numpy as np
import pytest
import tifffile

from lazystitch.errors import TileError
from lazystitch.io import read_tiff_region

IMAGE = (np.arange(300 * 200) * 7 % 65521).astype(np.uint16).reshape(300, 200)
WINDOWS = [
    (slice(0, 300), slice(150, 200)),  # a right-hand strip
    (slice(250, 300), slice(0, 200)),  # a bottom strip
    (slice(17, 33), slice(63, 129)),  # straddles segment borders
]
LAYOUTS = {
    "contiguous": {},
    "big-endian": {"byteorder": ">"},
    "strips-zlib": {"rowsperstrip": 16, "compression": "zlib"},
    "tiles-zlib": {"tile": (64, 64), "compression": "zlib"},
    "tiles-zlib-predictor": {"tile": (32, 48), "compression": "zlib", "predictor": True},
}


@pytest.mark.parametrize("view", [False, True], ids=["copy", "view"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("window", WINDOWS)
def test_window_pixels_equal_the_whole_read(tmp_path, layout, window, view):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, IMAGE, **LAYOUTS[layout])
    pixels, nbytes = read_tiff_region(path, IMAGE.shape, IMAGE.dtype, window, view=view)
    np.testing.assert_array_equal(pixels, IMAGE[window])
    assert nbytes > 0


def test_contiguous_reads_only_the_rows_of_the_window(tmp_path):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, IMAGE)
    _, nbytes = read_tiff_region(path, IMAGE.shape, IMAGE.dtype, (slice(250, 300), slice(0, 200)))
    assert nbytes == 50 * 200 * 2


def test_tiled_reads_only_the_tiles_the_window_touches(tmp_path):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, IMAGE, tile=(64, 64))  # 5 x 4 tiles of 8 KiB
    _, nbytes = read_tiff_region(path, IMAGE.shape, IMAGE.dtype, (slice(0, 300), slice(150, 200)))
    assert nbytes == 5 * 2 * 64 * 64 * 2  # the last two tile columns only
    with tifffile.TiffFile(path) as tif:
        assert nbytes < sum(tif.pages[0].databytecounts) / 1.9


@pytest.mark.parametrize("view", [False, True], ids=["copy", "view"])
def test_z_stack_window_of_every_plane(tmp_path, view):
    stack = np.stack([IMAGE, IMAGE // 2, IMAGE // 3])
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    window = (slice(250, 300), slice(0, 200))
    pixels, nbytes = read_tiff_region(path, stack.shape, stack.dtype, window, view=view)
    np.testing.assert_array_equal(pixels, stack[:, 250:300])
    assert nbytes == pixels.nbytes


def test_z_stack_whose_planes_lie_unevenly_in_the_file(tmp_path):
    # pages written one by one, each with a description of its own length: the planes' pixels
    # are not evenly spaced, so no one view of the file holds them
    stack = np.stack([IMAGE, IMAGE // 2, IMAGE // 3])
    path = tmp_path / "z.tif"
    with tifffile.TiffWriter(path) as tif:
        for k, plane in enumerate(stack):
            tif.write(plane, description="x" * (1000 * k + 1), metadata=None, contiguous=False)
    with tifffile.TiffFile(path) as tif:
        offsets = [p.dataoffsets[0] for p in tif.pages]
    assert offsets[2] - offsets[1] != offsets[1] - offsets[0]
    window = (slice(17, 33), slice(63, 129))
    pixels, _ = read_tiff_region(path, stack.shape, stack.dtype, window, view=True)
    np.testing.assert_array_equal(pixels, stack[:, 17:33, 63:129])


@pytest.mark.parametrize("view", [False, True], ids=["copy", "view"])
def test_a_file_that_changed_is_named(tmp_path, view):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, IMAGE)
    read_tiff_region(path, IMAGE.shape, IMAGE.dtype, WINDOWS[0], view=view)  # as checked
    tifffile.imwrite(path, IMAGE[:100])  # then rewritten, smaller
    with pytest.raises(TileError, match=r"t\.tif changed after it was checked"):
        read_tiff_region(path, IMAGE.shape, IMAGE.dtype, WINDOWS[0], view=view)


def test_a_file_rewritten_in_place_is_read_as_it_is_now(tmp_path):
    # same size, same layout, new pixels: what was learnt of the file must not stand for it
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, IMAGE)
    read_tiff_region(path, IMAGE.shape, IMAGE.dtype, WINDOWS[2], view=True)
    tifffile.imwrite(path, IMAGE[::-1], description="a longer description moves the pixels")
    pixels, _ = read_tiff_region(path, IMAGE.shape, IMAGE.dtype, WINDOWS[2], view=True)
    np.testing.assert_array_equal(pixels, IMAGE[::-1][WINDOWS[2]])


@pytest.mark.parametrize("view", [False, True], ids=["copy", "view"])
def test_a_file_cut_short_after_its_check_is_an_error_not_a_crash(tmp_path, view):
    # uncompressed pixels are read through a memory map of the file as it is now: a file
    # shortened since its header was checked is named, not left to numpy's buffer error
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, IMAGE)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - IMAGE.nbytes // 2)  # the header is intact, half the pixels gone
    with pytest.raises(TileError, match=r"t\.tif was truncated after it was checked"):
        read_tiff_region(path, IMAGE.shape, IMAGE.dtype, WINDOWS[1], view=view)
