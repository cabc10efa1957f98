"""Pairwise shifts between overlapping tiles: phase correlation on the overlap strips, with the
wrap-around ambiguity resolved by normalized cross-correlation (NCC) of the actual overlap."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
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


def pair_geometry(
    a: TileKey,
    b: TileKey,
    nominal: tuple[float, float],
    tile_yx: tuple[int, int],
    margin: int,
) -> PairGeometry | None:
    """The strips of tiles ``a`` and ``b`` (b at ``nominal`` relative to a) to correlate.

    Returns None if the tiles do not overlap at their nominal positions.
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
    if d >= 0:  # b lies after a: a's strip grows backwards, b's forwards
        a_rng[axis][0] -= m
        b_rng[axis][1] += m
    else:
        a_rng[axis][1] += m
        b_rng[axis][0] -= m
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

    ``coarse`` defaults to 8 px, less for narrow strips (a sixth of the shorter side, >= 2 px).
    """
    from scipy.ndimage import gaussian_filter

    if coarse is None:
        coarse = float(np.clip(min(strip.shape[-2:]) / 6, 2.0, 8.0))
    x = strip.astype(np.float32)
    return gaussian_filter(x, fine, mode="nearest") - gaussian_filter(x, coarse, mode="nearest")


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


def _overlap_score(sa: np.ndarray, sb: np.ndarray, t: tuple[int, int], min_px: int) -> float:
    """NCC of strip a and strip b moved by integer ``t`` (a[p] ~ b[p - t]) over their overlap."""
    oa, ob = _overlap(sa, sb, t)
    return ncc(oa, ob) if oa.size >= min_px else float("nan")


def _best_offset(
    peaks: list[np.ndarray],
    a: np.ndarray,
    b: np.ndarray,
    g: PairGeometry,
    max_shift: float,
    min_overlap_px: int,
) -> tuple[float, tuple[float, float]] | None:
    """Score every wrap-around image of each phase-correlation peak that lies within
    ``max_shift`` of the nominal offset by the NCC of the overlap (a, b band-passed); best wins.
    On a tie the earlier peak wins."""
    n = a.shape
    best: tuple[float, tuple[float, float]] | None = None
    for shift in peaks:
        for ky, kx in itertools.product((0, -1, 1), repeat=2):
            t = (shift[0] + ky * n[0], shift[1] + kx * n[1])
            off = (g.base[0] + t[0], g.base[1] + t[1])
            if abs(off[0] - g.nominal[0]) > max_shift or abs(off[1] - g.nominal[1]) > max_shift:
                continue
            score = _overlap_score(a, b, (round(t[0]), round(t[1])), min_overlap_px)
            if math.isfinite(score) and (best is None or score > best[0]):
                best = (score, off)
    return best


def _window_peaks(
    a: np.ndarray, b: np.ndarray, g: PairGeometry, max_shift: float, k: int
) -> list[tuple[int, int]]:
    """The ``k`` highest local maxima of the phase correlation of a and b, among the integer
    shifts t (strip b moved by t onto strip a) whose offset ``base + t`` lies within
    ``max_shift`` of the nominal one. Reading the surface inside that window, with every
    wrap-around image of a shift, is what lets a weak true peak beat a strong wrong one
    elsewhere (repeating patterns)."""
    fa, fb = np.fft.rfft2(a), np.fft.rfft2(b)
    cross = fa * np.conj(fb)
    cross /= np.maximum(np.abs(cross), 1e-12)
    surface = np.fft.irfft2(cross, s=a.shape)
    ranges = []
    for axis in range(2):
        centre = g.nominal[axis] - g.base[axis]
        lo, hi = math.ceil(centre - max_shift), math.floor(centre + max_shift)
        ranges.append(np.arange(lo, hi + 1))
    if not all(len(r) for r in ranges):
        return []
    window = surface[np.ix_(ranges[0] % a.shape[0], ranges[1] % a.shape[1])]
    from scipy.ndimage import maximum_filter

    is_peak = window == maximum_filter(window, size=3, mode="nearest")
    flat = np.flatnonzero(is_peak)
    top = flat[np.argsort(window.ravel()[flat])[::-1][:k]]
    rows, cols = np.unravel_index(top, window.shape)
    return [(int(ranges[0][r]), int(ranges[1][c])) for r, c in zip(rows, cols, strict=True)]


def _overlap(a: np.ndarray, b: np.ndarray, t: tuple[int, int]):
    """The parts of strip a and of strip b moved by integer t (a[p] ~ b[p - t]) that overlap."""
    (h, w), (ty, tx) = a.shape[-2:], t
    y0, y1 = max(0, ty), min(h, h + ty)
    x0, x1 = max(0, tx), min(w, w + tx)
    return a[..., y0:y1, x0:x1], b[..., y0 - ty : y1 - ty, x0 - tx : x1 - tx]


def _peak(a: np.ndarray, b: np.ndarray, upsample: int) -> list[np.ndarray]:
    try:
        return [phase_cross_correlation(a, b, upsample_factor=upsample)[0]]
    except (ValueError, FloatingPointError):  # pragma: no cover (degenerate input)
        return []


def _search(
    a: np.ndarray,
    b: np.ndarray,
    raw_a: np.ndarray,
    raw_b: np.ndarray,
    g: PairGeometry,
    max_shift: float,
    upsample: int,
    min_overlap_px: int,
) -> tuple[float, tuple[float, float]] | None:
    """The best (score, offset) of b relative to a: a, b band-passed strips, raw_a/raw_b raw."""
    # band-passed strips give the sharper peak when wide, raw ones when narrow (the filter needs
    # room): take both; on a tie (same whole-pixel shift) the one expected to be sharper wins
    filtered = _peak(a, b, upsample)
    raw = _peak(raw_a, raw_b, upsample)
    peaks = filtered + raw if min(a.shape) >= WIDE_STRIP_PX else raw + filtered
    best = _best_offset(peaks, a, b, g, max_shift, min_overlap_px)
    # the strongest peaks inside the allowed window, as further candidates: they win only by a
    # strictly better score, i.e. where the global peaks lie elsewhere (repeating patterns)
    in_window = [np.array(t, dtype=float) for t in _window_peaks(a, b, g, max_shift, 4)]
    window = _best_offset(in_window, a, b, g, max_shift, min_overlap_px)
    if window is not None and (best is None or window[0] > best[0] + 1e-9):
        t = (round(window[1][0] - g.base[0]), round(window[1][1] - g.base[1]))
        oa, ob = _overlap(raw_a, raw_b, t)
        sub = np.zeros(2)
        if min(oa.shape) >= 8:
            with np.errstate(all="ignore"):
                sub = phase_cross_correlation(oa, ob, upsample_factor=upsample)[0]
            sub = sub if np.all(np.abs(sub) <= 1.0) else np.zeros(2)
        best = (window[0], (g.base[0] + t[0] + sub[0], g.base[1] + t[1] + sub[1]))
    return best


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

    Candidates: the sub-pixel peaks of ``skimage.registration.phase_cross_correlation`` of the
    raw and of the band-passed strips, with their wrap-around images, and the strongest peaks of
    the correlation surface inside the window of shifts within ``max_shift`` of the nominal
    offset. Each is scored by the NCC of the actual (band-passed) overlap; the best one wins.

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
    a, b = band_pass(strip_a), band_pass(strip_b)
    raw_a, raw_b = strip_a.astype(np.float32), strip_b.astype(np.float32)
    best = _search(a, b, raw_a, raw_b, g, max_shift, upsample, min_overlap_px)
    if best is None:
        shift = failed(f"no offset within max_shift={max_shift} px of the nominal one correlates")
    else:
        shift = PairShift(g.a, g.b, g.nominal, (float(best[1][0]), float(best[1][1])), best[0])
    null = []
    for flip in DECOYS[:decoys]:  # the filter is symmetric: flipping commutes with it
        wrong, wrong_raw = np.ascontiguousarray(b[flip]), np.ascontiguousarray(raw_b[flip])
        decoy = _search(a, wrong, raw_a, wrong_raw, g, max_shift, 1, min_overlap_px)
        null.append(decoy[0] if decoy else float("nan"))
    return result(shift, null)
