"""Global positions from pairwise offsets: weighted least squares over the tile graph, rejection of
inconsistent links, and a stage model for tiles that no accepted link places."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import lsqr

from lazystitch._typing import TileKey
from lazystitch.registration._pairwise import PairShift

__all__ = ["LABELS", "GlobalSolution", "solve_positions"]

LABELS = ("registered", "stage-model", "isolated")


@dataclass(frozen=True)
class GlobalSolution:
    """Positions and how each tile and link fared.

    Attributes
    ----------
    keys : tuple of (row, col)
    positions : ndarray of shape (n_tiles, 2), float64
        Top-left (y, x) of each tile, in the coordinates of the nominal positions.
    labels : list of str
        ``registered`` (in the largest group of tiles joined by accepted links), ``isolated`` (in a
        smaller group, placed as a whole by the stage model) or ``stage-model`` (no accepted link).
    residuals : ndarray of shape (n_tiles,)
        Largest residual (px) of the tile's accepted links; nan without links.
    accepted : list of bool, one per pair
    reasons : list of str or None, one per pair
        Why a pair was rejected.
    stage_model : dict
        Fitted grid steps (``col_step``, ``row_step`` as (y, x)), and the spread (px) of the
        registered tiles around the model (``repeatability``).
    """

    keys: tuple[TileKey, ...]
    positions: np.ndarray
    labels: list[str]
    residuals: np.ndarray
    accepted: list[bool]
    reasons: list[str | None]
    stage_model: dict = field(default_factory=dict)


def _solve(
    n: int, edges: list[tuple[int, int, np.ndarray, float]], prior: np.ndarray
) -> np.ndarray:
    """Least squares: x_b - x_a = d (weight w) for every edge; a 1e-6-weight prior x = nominal
    fixes where each connected group sits (its mean stays at the nominal mean)."""
    m = len(edges)
    rows = np.repeat(np.arange(m), 2)
    cols = np.array([[a, b] for a, b, _, _ in edges], dtype=np.int64).ravel()
    w = np.array([math.sqrt(wt) for *_, wt in edges])
    vals = np.column_stack([-w, w]).ravel()
    eps = 1e-6
    A = sp.vstack(
        [sp.csr_matrix((vals, (rows, cols)), shape=(m, n)), eps * sp.identity(n, format="csr")]
    ).tocsr()
    out = np.empty((n, 2))
    for axis in range(2):
        rhs = np.concatenate(
            [w * np.array([d[axis] for _, _, d, _ in edges]), eps * prior[:, axis]]
        )
        out[:, axis] = lsqr(A, rhs, atol=1e-12, btol=1e-12, iter_lim=20 * n + 100)[0]
    return out


def _stage_model(
    keys: list[TileKey], pos: np.ndarray, nominal: np.ndarray, main: np.ndarray, pairs, accepted
) -> tuple[np.ndarray, dict]:
    """Fit p(r, c) = origin + r * row_step + c * col_step to the main group's tiles.

    The steps are 2-D vectors (the median accepted link of each direction), so a camera turned
    against the stage places unlinked tiles on the turned grid; ``info`` reports that turn and
    the scale (see :func:`_camera_turn`)."""
    idx = {k: i for i, k in enumerate(keys)}
    steps = {}
    for name, (dr, dc) in (("row_step", (1, 0)), ("col_step", (0, 1))):
        meas = [
            np.asarray(p.offset)
            for p, ok in zip(pairs, accepted, strict=True)
            if ok and (p.b[0] - p.a[0], p.b[1] - p.a[1]) == (dr, dc)
        ]
        if meas:
            steps[name] = np.median(np.array(meas), axis=0)
        else:  # no accepted link of this kind: the nominal step
            nom = [
                nominal[idx[(r + dr, c + dc)]] - nominal[idx[(r, c)]]
                for r, c in keys
                if (r + dr, c + dc) in idx
            ]
            steps[name] = np.median(np.array(nom), axis=0) if nom else np.zeros(2)
    rc = np.array(keys, dtype=np.float64)
    grid = rc[:, :1] * steps["row_step"] + rc[:, 1:] * steps["col_step"]
    ref = main if main.any() else np.ones(len(keys), bool)
    base = pos if main.any() else nominal
    origin = np.mean(base[ref] - grid[ref], axis=0)
    model = origin + grid
    spread = np.abs(pos[main] - model[main]) if main.any() else np.zeros((0, 2))
    info = {
        "row_step": [float(v) for v in steps["row_step"]],
        "col_step": [float(v) for v in steps["col_step"]],
        "repeatability": [float(v) for v in spread.max(axis=0)] if len(spread) else [0.0, 0.0],
        **_camera_turn(nominal[main], pos[main]),
    }
    return model, info


def _camera_turn(nominal: np.ndarray, pos: np.ndarray) -> dict[str, float | None]:
    """The camera's rotation against the stage and its scale: the similarity transform that
    best maps the nominal positions onto the registered ones (least squares over the tiles
    given, so the stage's random errors average out over the whole grid, not one step).

    ``rotation_deg`` is positive where the x axis turns towards y (clockwise on screen, y
    pointing down); None (both) with fewer than two distinct nominal positions."""
    none: dict[str, float | None] = {"rotation_deg": None, "scale": None}
    if len(nominal) < 2:
        return none
    zn = nominal[:, 1] + 1j * nominal[:, 0]
    zp = pos[:, 1] + 1j * pos[:, 0]
    zn, zp = zn - zn.mean(), zp - zp.mean()
    norm = float(np.sum(np.abs(zn) ** 2))
    if norm == 0:
        return none
    a = complex(np.sum(np.conj(zn) * zp) / norm)  # scale * e^(i * angle)
    return {"rotation_deg": math.degrees(math.atan2(a.imag, a.real)), "scale": abs(a)}


def _most_suspect(
    res: list[tuple[float, int]], worst: float, pairs: list[PairShift], accepted: list[bool]
) -> int:
    """The link to drop: among those (nearly) tied for the largest residual, the one whose offset
    strays furthest from the median step of its direction (the stage model's view). Where a
    tile hangs on two links that disagree, the residuals alone cannot tell which one is wrong."""
    tied = [i for r, i in res if r >= 0.9 * worst]
    if len(tied) == 1:
        return tied[0]

    def direction(p: PairShift) -> tuple[int, int]:
        return (p.b[0] - p.a[0], p.b[1] - p.a[1])

    def deviation(i: int) -> float:
        same = [
            pairs[j].offset
            for j, ok in enumerate(accepted)
            if ok and direction(pairs[j]) == direction(pairs[i])
        ]
        return float(np.hypot(*(np.asarray(pairs[i].offset) - np.median(same, axis=0))))

    return max(tied, key=deviation)


def solve_positions(
    keys: list[TileKey],
    nominal: np.ndarray,
    pairs: list[PairShift],
    *,
    threshold: float | Sequence[float],
    max_residual: float = 2.0,
) -> GlobalSolution:
    """Place every tile from the pairwise offsets.

    Parameters
    ----------
    keys : list of (row, col)
    nominal : ndarray of shape (n_tiles, 2)
        Nominal (stage or grid) top-left positions.
    pairs : list of PairShift
    threshold : float or sequence of float
        Pairs scoring below it (NCC; one for all, or one per pair) are rejected before the
        solve.
    max_residual : float
        Links whose residual after the solve exceeds this many px are dropped, worst first, and
        the solve repeated.
    """
    n = len(keys)
    idx = {k: i for i, k in enumerate(keys)}
    nominal = np.asarray(nominal, dtype=np.float64)
    accepted: list[bool] = []
    reasons: list[str | None] = []
    limits = (
        [float(threshold)] * len(pairs)
        if isinstance(threshold, int | float)
        else [float(t) for t in threshold]
    )
    for p, limit in zip(pairs, limits, strict=True):
        if not p.ok:
            accepted.append(False)
            reasons.append(f"failed: {p.error}")
        elif p.score < limit:
            accepted.append(False)
            reasons.append(f"score {p.score:.3f} below threshold {limit:.3f}")
        else:
            accepted.append(True)
            reasons.append(None)
    while True:
        edges = [
            (idx[p.a], idx[p.b], np.asarray(p.offset), max(p.score, 1e-3))
            for p, ok in zip(pairs, accepted, strict=True)
            if ok
        ]
        pos = _solve(n, edges, nominal) if edges else nominal.copy()
        res = [
            (float(np.hypot(*(pos[idx[p.b]] - pos[idx[p.a]] - np.asarray(p.offset)))), i)
            for i, (p, ok) in enumerate(zip(pairs, accepted, strict=True))
            if ok
        ]
        worst = max(res, default=(0.0, -1))
        if worst[0] <= max_residual:
            break
        drop = _most_suspect(res, worst[0], pairs, accepted)
        residual = {i: r for r, i in res}[drop]
        accepted[drop] = False
        reasons[drop] = f"inconsistent with the other links (residual {residual:.1f} px)"

    # groups of tiles joined by accepted links
    a_idx = [idx[p.a] for p, ok in zip(pairs, accepted, strict=True) if ok]
    b_idx = [idx[p.b] for p, ok in zip(pairs, accepted, strict=True) if ok]
    graph = sp.coo_matrix((np.ones(len(a_idx)), (a_idx, b_idx)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp, minlength=n_comp)
    linked = np.zeros(n, bool)
    linked[a_idx] = True
    linked[b_idx] = True
    main_comp = int(np.argmax(np.where(np.bincount(comp[linked], minlength=n_comp) > 0, sizes, 0)))
    main = linked & (comp == main_comp)
    model, info = _stage_model(list(keys), pos, nominal, main, pairs, accepted)
    labels = []
    for i in range(n):
        if main[i]:
            labels.append("registered")
        elif linked[i]:
            labels.append("isolated")
        else:
            labels.append("stage-model")
            pos[i] = model[i]
    for c in set(comp[linked & ~main]):  # islands: moved as a whole onto the stage model
        members = (comp == c) & linked
        pos[members] += np.mean(model[members] - pos[members], axis=0)
    residuals = np.full(n, np.nan)
    for r, i in res:
        for k in (idx[pairs[i].a], idx[pairs[i].b]):
            residuals[k] = np.fmax(residuals[k], r)
    return GlobalSolution(tuple(keys), pos, labels, residuals, accepted, reasons, info)
