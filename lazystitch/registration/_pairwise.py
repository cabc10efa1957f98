"""Pairwise shifts between overlapping tiles: phase correlation on the overlap strips, with the
wrap-around ambiguity resolved by normalized cross-correlation (NCC) of the actual overlap.

Each strip is transformed once: its band-passed version and both spectra (raw and band-passed)
serve every correlation, every candidate and the decoys. Strips are cut to lengths whose FFT is
fast (5-smooth), since a prime length (an overlap of 137 px) makes every transform ~4x slower.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from skimage.registration import phase_cross_correlation

from lazystitch._typing import TileKey

WIDE_STRIP_PX = 64
"""Strips at least this wide (shorter side) prefer the band-passed sub-pixel peak."""

__all__ = ["PairGeometry", "PairShift", "band_pass", "ncc", "pair_geometry", "register_strips"]


@dataclass(frozen=True)
class PairGeometry:
    """Where the two strips of a tile pair are cut, in each tile's own pixel coordinates.

    ``a_slices``/``b_slices`` are (row slice, col slice) of equal-size strips: the nominal overlap,
    widened by the search margin into each tile along the axis that separates them.
    ``base`` is ``strip origin in a - strip origin in b`` as a (y, x) offset: b's position relative
    to a is ``base + t`` where ``t`` is the shift that moves b's strip onto a's.
    """

    a: TileKey
    b: TileKey
    nominal: tuple[float, float]
    a_slices: tuple[slice, slice]
    b_slices: tuple[slice, slice]
    base: tuple[int, int]

    @property
    def strip_yx(self) -> tuple[int, int]:
        return tuple(s.stop - s.start for s in self.a_slices)


@dataclass(frozen=True)
class PairShift:
    """The measured offset of tile ``b`` relative to tile ``a`` (position of b minus position of a).

    ``score`` is the NCC of the overlap at that offset (in [-1, 1]); ``nan`` with ``error`` set when
    no candidate offset was valid. A failed pair is data, not an exception.
    """

    a: TileKey
    b: TileKey
    nominal: tuple[float, float]
    offset: tuple[float, float]
    score: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and math.isfinite(self.score)


def _shorter_fast_len(n: int) -> int:
    """The largest length <= n whose FFT is fast (n itself if it is).

    >>> _shorter_fast_len(137), _shorter_fast_len(1024), _shorter_fast_len(1)
    (135, 1024, 1)
    """
    while n > 1 and sfft.next_fast_len(n) != n:
        n -= 1
    return n


def pair_geometry(
    a: TileKey,
    b: TileKey,
    nominal: tuple[float, float],
    tile_yx: tuple[int, int],
    margin: int,
) -> PairGeometry | None:
    """The strips of tiles ``a`` and ``b`` (b at ``nominal`` relative to a) to correlate.

    The nominal overlap, widened by at least ``margin`` px into each tile along the axis that
    separates them (a little more, up to a fast FFT length, where the tile allows), and trimmed
    along the other axis to a fast FFT length. Returns None if the tiles do not overlap at their
    nominal positions.
    """
    h, w = tile_yx
    dy, dx = (round(v) for v in nominal)
    # nominal overlap in a's coordinates, and in b's
    ya0, ya1 = max(0, dy), min(h, dy + h)
    xa0, xa1 = max(0, dx), min(w, dx + w)
    if ya0 >= ya1 or xa0 >= xa1:
        return None
    a_rng = [[ya0, ya1], [xa0, xa1]]
    b_rng = [[ya0 - dy, ya1 - dy], [xa0 - dx, xa1 - dx]]
    # widen along the separating axis (the one with the smaller overlap) into each tile
    axis = 0 if (ya1 - ya0) / h < (xa1 - xa0) / w else 1
    d = (dy, dx)[axis]
    size = (h, w)[axis]
    extent = a_rng[axis][1] - a_rng[axis][0]
    m = max(0, min(margin, size - extent))
    fast = sfft.next_fast_len(extent + m)
    if fast <= size:
        m = fast - extent
    if d >= 0:  # b lies after a: a's strip grows backwards, b's forwards
        a_rng[axis][0] -= m
        b_rng[axis][1] += m
    else:
        a_rng[axis][1] += m
        b_rng[axis][0] -= m
    # trim the other axis (centred) to a fast length: a few pixels of overlap less
    other = 1 - axis
    length = a_rng[other][1] - a_rng[other][0]
    cut = length - _shorter_fast_len(length)
    for rng in (a_rng, b_rng):
        rng[other][0] += cut // 2
        rng[other][1] -= cut - cut // 2
    base = (a_rng[0][0] - b_rng[0][0], a_rng[1][0] - b_rng[1][0])
    return PairGeometry(
        a=a,
        b=b,
        nominal=(float(nominal[0]), float(nominal[1])),
        a_slices=(slice(*a_rng[0]), slice(*a_rng[1])),
        b_slices=(slice(*b_rng[0]), slice(*b_rng[1])),
        base=base,
    )


def band_pass(strip: np.ndarray, fine: float = 1.0, coarse: float | None = None) -> np.ndarray:
    """Difference of Gaussians: drops pixel noise and what varies slowly (vignetting, uneven
    illumination, background), which otherwise dominate both correlation and score.

    Filtered in the DCT domain of the strip padded by replicating its edges (so edges behave
    like scipy.ndimage's ``mode="nearest"``, which scores overlaps better than mirrored or
    periodic edges), at the cost of two fast transforms whatever the widths. ``coarse``
    defaults to 8 px, less for narrow strips (a sixth of the shorter side, >= 2 px).

    Examples
    --------
    >>> x = np.zeros((32, 32), np.float32); x[16, 16] = 1
    >>> y = band_pass(x)
    >>> np.unravel_index(np.argmax(y), y.shape)
    (np.int64(16), np.int64(16))
    """
    if coarse is None:
        coarse = float(np.clip(min(strip.shape[-2:]) / 6, 2.0, 8.0))
    shape = strip.shape[-2:]
    pad = math.ceil(2 * coarse)
    widths = [(0, 0)] * (strip.ndim - 2) + [
        (pad, sfft.next_fast_len(n + 2 * pad, real=True) - n - pad) for n in shape
    ]
    x = np.pad(strip.astype(np.float32), widths, mode="edge")
    axes = (-2, -1)
    spec = sfft.dctn(x, type=2, axes=axes, norm="ortho")
    w2 = [(np.pi * np.arange(n, dtype=np.float32) / n) ** 2 for n in x.shape[-2:]]

    def gauss(sigma: float) -> np.ndarray:
        return np.exp(-0.5 * sigma**2 * w2[0])[:, None] * np.exp(-0.5 * sigma**2 * w2[1])

    spec *= gauss(fine) - gauss(coarse)
    out = sfft.idctn(spec, type=2, axes=axes, norm="ortho")
    return out[..., pad : pad + shape[0], pad : pad + shape[1]]


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalized cross-correlation (Pearson r) of two equal-shape arrays; nan if either is flat.

    Examples
    --------
    >>> x = np.arange(12.0).reshape(3, 4)
    >>> round(ncc(x, 2 * x + 1), 6), round(ncc(x, -x), 6)
    (1.0, -1.0)
    """
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else float("nan")


@dataclass(frozen=True)
class _Strip:
    """A strip prepared once: raw and band-passed pixels, and the spectra of both."""

    raw: np.ndarray
    bp: np.ndarray
    raw_f: np.ndarray
    bp_f: np.ndarray

    @classmethod
    def of(cls, pixels: np.ndarray) -> _Strip:
        raw = np.ascontiguousarray(pixels, dtype=np.float32)
        bp = band_pass(raw)
        return cls(raw, bp, sfft.fft2(raw), sfft.fft2(bp))

    def flipped(self, flip: tuple[slice, slice]) -> _Strip:
        raw, bp = np.ascontiguousarray(self.raw[flip]), np.ascontiguousarray(self.bp[flip])
        return _Strip(raw, bp, sfft.fft2(raw), sfft.fft2(bp))


def _surfaces(a: _Strip, b: _Strip) -> tuple[np.ndarray, np.ndarray]:
    """The phase-correlation surfaces of the band-passed and of the raw strips (where one
    peaks at t, b moved by t matches a). Both are real, so one inverse FFT gives both: the
    band-passed one as its real part, the raw one as its imaginary part."""

    def whitened(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
        cross = fa * np.conj(fb)
        cross /= np.maximum(np.abs(cross), 1e-12)
        return cross

    both = sfft.ifft2(whitened(a.bp_f, b.bp_f) + 1j * whitened(a.raw_f, b.raw_f))
    return both.real, both.imag


def _overlap(a: np.ndarray, b: np.ndarray, t: tuple[int, int]):
    """The parts of strip a and of strip b moved by integer t (a[p] ~ b[p - t]) that overlap."""
    (h, w), (ty, tx) = a.shape[-2:], t
    y0, y1 = max(0, ty), min(h, h + ty)
    x0, x1 = max(0, tx), min(w, w + tx)
    return a[..., y0:y1, x0:x1], b[..., y0 - ty : y1 - ty, x0 - tx : x1 - tx]


def _in_window(t: tuple[int, int], g: PairGeometry, max_shift: float) -> bool:
    return all(abs(g.base[i] + t[i] - g.nominal[i]) <= max_shift for i in range(2))


def _candidates(
    a: _Strip, b: _Strip, g: PairGeometry, max_shift: float, k: int = 4
) -> list[tuple[int, int]]:
    """Integer shifts t (b moved by t onto a) to score, in order of preference: the global
    peaks of the band-passed and of the raw correlation (which first depends on the strip
    width), each with every wrap-around image inside the window, then the ``k`` highest local
    maxima of the band-passed surface inside the window. Reading the surface inside the window
    is what lets a weak true peak beat a strong wrong one elsewhere (repeating patterns)."""
    n = a.raw.shape
    bp, raw = _surfaces(a, b)
    surfaces = (bp, raw) if min(n) >= WIDE_STRIP_PX else (raw, bp)
    out: list[tuple[int, int]] = []

    def add(t: tuple[int, int]) -> None:
        if t not in out and _in_window(t, g, max_shift):
            out.append(t)

    for s in surfaces:
        py, px = np.unravel_index(int(np.argmax(s)), n)
        for ky, kx in itertools.product((0, -1, 1), repeat=2):
            add((int(py) + ky * n[0], int(px) + kx * n[1]))
    ranges = []
    for axis in range(2):
        centre = g.nominal[axis] - g.base[axis]
        lo, hi = math.ceil(centre - max_shift), math.floor(centre + max_shift)
        ranges.append(np.arange(lo, hi + 1))
    if all(len(r) for r in ranges):
        from scipy.ndimage import maximum_filter

        window = bp[np.ix_(ranges[0] % n[0], ranges[1] % n[1])]
        is_peak = window == maximum_filter(window, size=3, mode="nearest")
        flat = np.flatnonzero(is_peak)
        for i in flat[np.argsort(window.ravel()[flat])[::-1][:k]]:
            r, c = np.unravel_index(i, window.shape)
            add((int(ranges[0][r]), int(ranges[1][c])))
    return out


def _best(
    a: _Strip, b: _Strip, g: PairGeometry, max_shift: float, min_overlap_px: int
) -> tuple[float, tuple[int, int]] | None:
    """The candidate shift whose band-passed overlap correlates best (the earlier on a tie)."""
    best = None
    for t in _candidates(a, b, g, max_shift):
        oa, ob = _overlap(a.bp, b.bp, t)
        # strips of unequal size (a layout whose neighbours are not where the keys say, e.g.
        # row 0 at the bottom) can leave b nothing under a part of a: no score there
        enough = oa.size >= min_overlap_px and ob.shape == oa.shape
        score = ncc(oa, ob) if enough else float("nan")
        if math.isfinite(score) and (best is None or score > best[0]):
            best = (score, t)
    return best


def _sub_pixel(a: _Strip, b: _Strip, t: tuple[int, int], upsample: int) -> np.ndarray:
    """Integer shift t refined to sub-pixel by scikit-image's upsampled phase correlation of
    the whole strips, band-passed and raw (from their spectra; the band-passed first when the
    strips are wide). The first estimate that rounds to t (or to one of its wrap-around
    images) wins, else the first within a pixel of it; failing both, the phase correlation of
    the overlap at t."""
    n = np.array(a.raw.shape)
    wide = min(n) >= WIDE_STRIP_PX
    spectra = [(a.bp_f, b.bp_f), (a.raw_f, b.raw_f)]
    near = []
    for fa, fb in spectra if wide else spectra[::-1]:
        with np.errstate(all="ignore"):
            shift = phase_cross_correlation(fa, fb, upsample_factor=upsample, space="fourier")[0]
        shift = shift + n * np.round((np.array(t) - shift) / n)
        if np.array_equal(np.round(shift), t):
            return shift
        near.append(shift)
    for shift in near:
        if np.all(np.abs(shift - t) <= 1.0):
            return shift
    oa, ob = _overlap(a.bp if wide else a.raw, b.bp if wide else b.raw, t)
    sub = np.zeros(2)
    if min(oa.shape) >= 8:
        with np.errstate(all="ignore"):
            sub = phase_cross_correlation(oa, ob, upsample_factor=upsample)[0]
    return np.array(t) + (sub if np.all(np.abs(sub) <= 1.0) else 0.0)


# deliberately wrong pairings of a pair's strips: b turned by 180 degrees, flipped, mirrored
DECOYS = (
    (slice(None, None, -1), slice(None, None, -1)),
    (slice(None, None, -1), slice(None)),
    (slice(None), slice(None, None, -1)),
)


def register_strips(
    strip_a: np.ndarray,
    strip_b: np.ndarray,
    geometry: PairGeometry,
    *,
    max_shift: float,
    upsample: int = 20,
    min_overlap_px: int = 64,
    decoys: int = 0,
) -> PairShift | tuple[PairShift, list[float]]:
    """Measure the offset of b relative to a from their strips (2-D, equal shape).

    Candidates: the peaks of the phase correlation of the raw and of the band-passed strips,
    with their wrap-around images, and the strongest peaks of the band-passed correlation
    surface inside the window of shifts within ``max_shift`` of the nominal offset. Each is
    scored by the NCC of the actual (band-passed) overlap; the best one wins and is refined to
    sub-pixel by ``skimage.registration.phase_cross_correlation``.

    With ``decoys=k`` (1 to 3) also return the scores that the very same search reaches on ``k``
    deliberately wrong pairings (b's strip turned by 180 degrees, flipped, mirrored): samples
    of the null distribution that sets the acceptance threshold.
    """
    g = geometry

    def failed(msg: str) -> PairShift:
        return PairShift(g.a, g.b, g.nominal, g.nominal, float("nan"), msg)

    def result(shift: PairShift, null: list[float]):
        return (shift, null) if decoys else shift

    if strip_a.shape != strip_b.shape or strip_a.ndim != 2:
        return result(failed(f"strips differ in shape: {strip_a.shape} vs {strip_b.shape}"), [])
    if not (np.ptp(strip_a) > 0 and np.ptp(strip_b) > 0):
        return result(failed("a strip is featureless (constant)"), [])
    a, b = _Strip.of(strip_a), _Strip.of(strip_b)
    best = _best(a, b, g, max_shift, min_overlap_px)
    if best is None:
        shift = failed(f"no offset within max_shift={max_shift} px of the nominal one correlates")
    else:
        score, t = best
        fine = _sub_pixel(a, b, t, upsample)
        offset = (g.base[0] + float(fine[0]), g.base[1] + float(fine[1]))
        shift = PairShift(g.a, g.b, g.nominal, offset, score)
    null = []
    for flip in DECOYS[:decoys]:  # the filter is symmetric: flipping commutes with it
        decoy = _best(a, b.flipped(flip), g, max_shift, min_overlap_px)
        null.append(decoy[0] if decoy else float("nan"))
    return result(shift, null)
