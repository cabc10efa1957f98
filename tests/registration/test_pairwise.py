"""Pairwise shifts on strips: known answers, wrap-around, failures as data."""

import numpy as np
import pytest
from scipy import ndimage

from lazystitch.registration import pair_geometry, register_strips
from lazystitch.testing import specimen_image


@pytest.fixture(scope="module")
def image():
    return specimen_image((700, 900), dtype="float32", seed=4).astype(np.float64)


def _cut(image, y, x, h, w):
    """A tile whose top-left lies at the (sub-pixel) position (y, x) of ``image``."""
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    region = image[y0 : y0 + h + 2, x0 : x0 + w + 2]
    return ndimage.shift(region, (y0 - y, x0 - x), order=3, mode="nearest")[:h, :w]


@pytest.mark.parametrize(
    "true",
    [(0.0, 230.0), (3.4, 221.7), (-7.25, 238.5), (-14.6, 215.3)],  # horizontal pairs
)
def test_recovers_known_subpixel_offsets(image, true):
    h, w = 200, 256
    a = _cut(image, 100, 100, h, w)
    b = _cut(image, 100 + true[0], 100 + true[1], h, w)
    g = pair_geometry((0, 0), (0, 1), (0.0, 230.0), (h, w), margin=20)
    s = register_strips(a[g.a_slices], b[g.b_slices], g, max_shift=20)
    assert s.ok and s.score > 0.9
    np.testing.assert_allclose(s.offset, true, atol=0.1)


def test_vertical_pair(image):
    h, w = 256, 200
    a = _cut(image, 50, 300, h, w)
    b = _cut(image, 50 + 231.3, 300 - 4.2, h, w)
    g = pair_geometry((0, 0), (1, 0), (226.0, 0.0), (h, w), margin=20)
    s = register_strips(a[g.a_slices], b[g.b_slices], g, max_shift=20)
    np.testing.assert_allclose(s.offset, (231.3, -4.2), atol=0.1)


def test_shift_beyond_half_the_strip_is_resolved_by_ncc(image):
    # strips are 56 + 40 = 96 px wide; b sits 15 px further right than nominal, so the strips are
    # 55 px apart: phase correlation reports -41 (mod 96) and only the wrapped candidate fits
    h, w = 200, 256
    a = _cut(image, 100, 100, h, w)
    b = _cut(image, 100, 100 + 215, h, w)
    g = pair_geometry((0, 0), (0, 1), (0.0, 200.0), (h, w), margin=40)
    assert g.a_slices[1].stop - g.a_slices[1].start == 96
    s = register_strips(a[g.a_slices], b[g.b_slices], g, max_shift=40)
    np.testing.assert_allclose(s.offset, (0, 215), atol=0.1)


def test_featureless_strip_is_a_failed_pair_not_an_error():
    a = np.full((100, 120), 7.0)
    g = pair_geometry((0, 0), (0, 1), (0.0, 100.0), (100, 120), margin=10)
    s = register_strips(a[g.a_slices], a[g.b_slices], g, max_shift=10)
    assert not s.ok and "featureless" in s.error and s.offset == s.nominal


def test_unrelated_strips_score_low(image):
    h, w = 200, 256
    a = _cut(image, 10, 10, h, w)
    b = _cut(image, 400, 600, h, w)  # not a neighbour at all
    g = pair_geometry((0, 0), (0, 1), (0.0, 230.0), (h, w), margin=20)
    s = register_strips(a[g.a_slices], b[g.b_slices], g, max_shift=20)
    assert not s.ok or s.score < 0.5


def test_no_overlap_has_no_geometry():
    assert pair_geometry((0, 0), (0, 1), (0.0, 300.0), (100, 250), margin=10) is None
