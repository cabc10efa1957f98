"""Registration end to end: neighbour pairs, strips on the cluster, threshold, global solve."""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import numpy as np
from threadpoolctl import threadpool_limits

from lazystitch._typing import TileKey
from lazystitch.cluster import active_client
from lazystitch.errors import ConfigError, LayoutError, LazystitchWarning, UnlinkedTilesError
from lazystitch.io import RegionReader, TileSet
from lazystitch.layout import Layout
from lazystitch.registration._global import GlobalSolution, solve_positions
from lazystitch.registration._pairwise import (
    PairGeometry,
    PairShift,
    pair_geometry,
    register_strips,
)
from lazystitch.registration._sanity import suspect_layout

__all__ = ["Registration", "default_max_shift", "neighbour_pairs", "register"]


def default_max_shift(tile_yx: tuple[int, int]) -> int:
    """20 px, or 5 % of the larger tile side if that is more."""
    return max(20, round(0.05 * max(tile_yx)))


def check_max_shift(max_shift: float | None, tile_yx: tuple[int, int]) -> None:
    """Refuse a search radius no overlap can use: it must be smaller than the tiles.

    Raises
    ------
    ConfigError
        Naming ``registration.max_shift`` and the tile size.
    """
    if max_shift is not None and max_shift >= min(tile_yx):
        raise ConfigError(
            f"registration.max_shift {max_shift:g} px is not smaller than the tiles "
            f"({tile_yx[0]}x{tile_yx[1]} px): no neighbour can be that far off; "
            f"use less than {min(tile_yx)}"
        )


def neighbour_pairs(layout: Layout) -> list[tuple[TileKey, TileKey]]:
    """Each tile with its right and lower grid neighbour, where both exist."""
    present = set(layout.keys)
    return [
        (k, n) for k in layout.keys for n in ((k[0], k[1] + 1), (k[0] + 1, k[1])) if n in present
    ]


def _pairs_task(
    reader: RegionReader, pairs: list[tuple[int, int, PairGeometry]], max_shift: float, decoys: int
) -> list[tuple[PairShift, list[float], int]]:
    """Register a batch of pairs (the places of tiles a and b in ``reader``, and where their
    strips are), each from its two partial reads: per pair (shift, null scores, bytes read)."""
    out = []
    for ia, ib, g in pairs:
        (a, nbytes_a), (b, nbytes_b) = reader.read(ia, g.a_slices), reader.read(ib, g.b_slices)
        lead = tuple(range(a.ndim - 2))
        if lead:  # z/t stacks register in Y, X on a maximum projection
            a, b = a.max(axis=lead), b.max(axis=lead)
        result = register_strips(a, b, g, max_shift=max_shift, decoys=decoys)
        shift, null = result if isinstance(result, tuple) else (result, [])
        out.append((shift, null, nbytes_a + nbytes_b))
    return out


PAIRS_PER_TASK_MAX = 32
"""A task registers at most this many pairs (a few tens of ms each)."""

TASKS_PER_THREAD = 4
"""Pairs are batched into about this many tasks per worker thread (fewer, when that would
make tasks bigger than :data:`PAIRS_PER_TASK_MAX`)."""


def _batch_size(n_pairs: int) -> int:
    """Pairs per task. A task of one pair (two reads and ~30 ms of work) cost ~4 ms more on
    distributed than on the threaded scheduler (measured, in-process cluster, 8x8 x 1024^2:
    336 tasks 5.1 s, 4 tasks 3.7 s): the event loop shares the GIL with the tasks. A few
    tasks per thread keep the threads busy to the end."""
    client = active_client()
    threads = sum(client.nthreads().values()) if client is not None else (os.cpu_count() or 1)
    return max(
        1, min(PAIRS_PER_TASK_MAX, math.ceil(n_pairs / (TASKS_PER_THREAD * max(1, threads))))
    )


@dataclass(frozen=True)
class Registration:
    """Registered positions and the evidence for them."""

    layout: Layout
    solution: GlobalSolution
    pairs: list[PairShift]
    threshold: float
    null_scores: list[float]
    max_shift: float
    bytes_read: int = 0
    strip_bytes: int = 0
    warnings: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per stage: ``pairs`` (reads and pairs on the cluster), ``solve``,
    ``layout_check``; the API adds ``headers`` and ``cluster_start``."""

    @property
    def read_amplification(self) -> float:
        """Bytes read from the tile files / bytes of the strips (1.0: only the strips)."""
        return self.bytes_read / self.strip_bytes if self.strip_bytes else float("nan")

    @property
    def labels(self) -> dict[TileKey, str]:
        return dict(zip(self.solution.keys, self.solution.labels, strict=True))

    def tile_scores(self) -> dict[TileKey, float]:
        """Best score of each tile's accepted links (nan without one)."""
        best: dict[TileKey, float] = {k: float("nan") for k in self.solution.keys}
        for p, ok in zip(self.pairs, self.solution.accepted, strict=True):
            if ok:
                for k in (p.a, p.b):
                    best[k] = float(np.fmax(best[k], p.score))
        return best

    def write_csv(self, path: str | Path) -> Path:
        """``row,col,y,x,label,score,residual``: readable by ``lazystitch stitch --positions``."""
        path = Path(path)
        scores = self.tile_scores()
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["row", "col", "y", "x", "label", "score", "residual"])
            for i, key in enumerate(self.solution.keys):
                y, x = self.solution.positions[i]
                w.writerow(
                    [
                        key[0],
                        key[1],
                        f"{y:.3f}",
                        f"{x:.3f}",
                        self.solution.labels[i],
                        _num(scores[key]),
                        _num(self.solution.residuals[i]),
                    ]
                )
        return path

    def report(self) -> dict[str, Any]:
        """Every pair (shift, score, accepted or why not) and every tile (label, residual)."""
        sol = self.solution
        labels = list(sol.labels)
        return {
            "threshold": self.threshold,
            "max_shift": self.max_shift,
            "null_scores": {
                "n": len(self.null_scores),
                "p99": _num(self.threshold),
                "max": _num(max(self.null_scores, default=float("nan"))),
            },
            "stage_model": sol.stage_model,
            "reads": {
                "bytes_read": self.bytes_read,
                "strip_bytes": self.strip_bytes,
                "amplification": _num(self.read_amplification),
            },
            "summary": {
                label: labels.count(label) for label in ("registered", "stage-model", "isolated")
            }
            | {"pairs": len(self.pairs), "pairs_accepted": int(sum(sol.accepted))},
            "warnings": list(self.warnings),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "pairs": [
                {
                    "a": list(p.a),
                    "b": list(p.b),
                    "nominal": list(p.nominal),
                    "offset": list(p.offset),
                    "shift": [p.offset[0] - p.nominal[0], p.offset[1] - p.nominal[1]],
                    "score": _num(p.score),
                    "accepted": ok,
                    "reason": why,
                }
                for p, ok, why in zip(self.pairs, sol.accepted, sol.reasons, strict=True)
            ],
            "tiles": [
                {
                    "row": k[0],
                    "col": k[1],
                    "y": float(sol.positions[i][0]),
                    "x": float(sol.positions[i][1]),
                    "label": sol.labels[i],
                    "why": why,
                    "residual": _num(sol.residuals[i]),
                }
                for i, (k, why) in enumerate(zip(sol.keys, self.placement_reasons(), strict=True))
            ],
        }

    def placement_reasons(self) -> list[str]:
        """Per tile, in ``solution.keys`` order, why it is placed as it is: its accepted links,
        or why none of its links was accepted."""
        sol = self.solution
        links: dict[TileKey, list[tuple[bool, str]]] = {k: [] for k in sol.keys}
        for p, ok, why in zip(self.pairs, sol.accepted, sol.reasons, strict=True):
            for k, other in ((p.a, p.b), (p.b, p.a)):
                links[k].append((ok, f"({other[0]}, {other[1]}): {why or 'accepted'}"))
        out = []
        for k, label in zip(sol.keys, sol.labels, strict=True):
            n_ok = sum(ok for ok, _ in links[k])
            if label == "registered":
                out.append(f"{n_ok} of {len(links[k])} links accepted, in the main group")
            elif label == "isolated":
                out.append(
                    f"{n_ok} of {len(links[k])} links accepted, but its group is not joined to "
                    "the main one: moved as a whole onto the stage model"
                )
            else:
                refused = "; ".join(text for ok, text in links[k] if not ok) or "no neighbours"
                out.append(f"no accepted link, placed by the stage model ({refused})")
        return out

    def write_report(self, directory: str | Path) -> Path:
        """``registration.json`` and ``registration.png`` (the tile graph) in ``directory``."""
        from lazystitch.registration._plot import plot_registration

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "registration.json"
        path.write_text(json.dumps(self.report(), indent=1))
        plot_registration(self, directory / "registration.png")
        return path


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 4)


def _compute(tasks: list) -> list:
    client = active_client()
    if client is None:
        # one BLAS thread per task thread: scikit-image's sub-pixel step multiplies matrices,
        # and OpenBLAS threads under each task thread made two threads slower than one
        # (dask's worker processes get the same limit from distributed's nanny)
        with threadpool_limits(limits=1, user_api="blas"):
            return list(dask.compute(*tasks, scheduler="threads"))
    return client.gather(client.compute(tasks))


OWN_DECOY_MARGIN = 0.2
"""How far (NCC) a pair must beat its own decoys to be accepted below the global threshold."""

FLOOR_MADS = 6.0
"""The floor no pair is accepted under: the null's median plus this many of its robust SDs."""


def pair_thresholds(threshold: float, null: list[float], own: list[float]) -> list[float]:
    """Each pair's acceptance threshold: the global one (the null's 99th percentile), or
    lower for a pair that beats its own decoys by :data:`OWN_DECOY_MARGIN` and clears a
    robust floor (the null's median plus :data:`FLOOR_MADS` robust standard deviations).

    Strips whose content looks alike turned or flipped (a straight edge along the strip, a
    smooth round border) let their decoys score high, and with them the 99th percentile of
    the whole null, which then refuses real links of ordinary content elsewhere (a fundus
    photograph: links at 0.62-0.79 under a threshold of 0.82, set by decoys at 0.66-0.88 of
    four other pairs, while their own decoys reached 0.07-0.26). Each pair is held to what
    its own content does on a wrong pairing; the floor keeps a pair whose decoys all failed
    by chance from passing on noise.
    """
    if not null:
        return [threshold] * len(own)
    median = float(np.median(null))
    floor = median + FLOOR_MADS * 1.4826 * float(np.median(np.abs(np.asarray(null) - median)))
    out = []
    for o in own:
        lower = max(floor, o + OWN_DECOY_MARGIN) if math.isfinite(o) else threshold
        out.append(min(threshold, lower))
    return out


def register(
    tiles: TileSet,
    layout: Layout,
    *,
    max_shift: float | None = None,
    max_residual: float = 2.0,
    check_layout: bool = True,
    allow_unlinked: bool = False,
) -> Registration:
    """Find the tiles' true positions from their overlaps.

    Parameters
    ----------
    tiles : TileSet
    layout : Layout
        Nominal positions (grid or stage); neighbours are the right and lower grid cells.
    max_shift : float, optional
        How far (px) a tile may be from its nominal place relative to a neighbour; also the margin
        read around each overlap. Default :func:`default_max_shift`.
    max_residual : float
        Links that disagree with the solution by more than this (px) are dropped.
    check_layout : bool
        When a whole group of a grid's links fails (one direction, or every other row), try
        the usual mix-ups (mirrored, snake, swapped) and raise
        :class:`~lazystitch.errors.LayoutError` naming the fix if one of them fits (for a
        positions layout: its stage axes flipped or exchanged).
    allow_unlinked : bool
        When fewer than half the tiles are registered (the rest placed by the stage model or
        left in islands), warn and record it in the report instead of raising.

    Raises
    ------
    LayoutError
        If the layout looks mixed up (see ``check_layout``).
    UnlinkedTilesError
        If fewer than half the tiles are registered and ``allow_unlinked`` is False; the
        registration is in its ``.registration`` (to write its report).

    Returns
    -------
    Registration
        ``.layout`` holds the registered (float) positions.

    Notes
    -----
    Pairs are scored by the NCC of their overlap; the acceptance threshold is the 99th
    percentile of the scores that the very same search reaches on deliberately wrong pairings
    (each pair's b strip turned by 180 degrees; also flipped and mirrored when there are fewer
    than 50 pairs), so it adapts to the data the way ASHLAR's permutation test over non-adjacent
    tiles does, without reading any extra tile. A pair may also pass below it against its own
    decoys (:func:`pair_thresholds`).
    """
    check_max_shift(max_shift, layout.tile_yx)
    max_shift = float(max_shift if max_shift is not None else default_max_shift(layout.tile_yx))
    t0 = time.perf_counter()
    pairs, null, own, reads = _measure(tiles, layout, max_shift)
    t1 = time.perf_counter()
    threshold = float(np.percentile(null, 99)) if null else 0.0
    sol = solve_positions(
        list(layout.keys),
        layout.positions,
        pairs,
        threshold=pair_thresholds(threshold, null, own),
        max_residual=max_residual,
    )
    t2 = time.perf_counter()
    if check_layout:

        def trial(alt_tiles: TileSet, alt_layout: Layout) -> tuple[int, int]:
            alt_pairs, *_ = _measure(alt_tiles, alt_layout, max_shift, null=False)
            return sum(p.ok and p.score >= threshold for p in alt_pairs), len(alt_pairs)

        advice = suspect_layout(tiles, layout, pairs, threshold, trial)
        if advice is not None:
            raise LayoutError(advice.message())
    seconds = {"pairs": t1 - t0, "solve": t2 - t1, "layout_check": time.perf_counter() - t2}
    registered = Layout(
        keys=layout.keys,
        positions=sol.positions,
        tile_yx=layout.tile_yx,
        kind="registered",
        description={**layout.description, "registered": True, "max_shift": max_shift},
    )
    unlinked = _unlinked(sol.labels, sum(sol.accepted), len(pairs))
    turned = _turned(sol.stage_model.get("rotation_deg"))
    result = Registration(
        registered, sol, pairs, threshold, null, max_shift, *reads,
        warnings=tuple(w for w in (unlinked, turned) if w), seconds=seconds,
    )  # fmt: skip
    if unlinked and not allow_unlinked:
        raise UnlinkedTilesError(
            f"{unlinked}; pass --allow-unlinked (registration.allow_unlinked: true) to fuse "
            "them there anyway",
            result,
        )
    for message in (unlinked, turned):
        if message:
            warnings.warn(message, LazystitchWarning, stacklevel=2)
    return result


ROTATION_WARN_DEG = 0.5
"""A camera turned further than this against the stage is worth a warning."""


def _turned(rotation_deg: float | None) -> str | None:
    if rotation_deg is None or abs(rotation_deg) <= ROTATION_WARN_DEG:
        return None
    return (
        f"the camera is turned {rotation_deg:+.2f} degrees against the stage (measured from "
        "the accepted links; positive is clockwise on screen): tiles are placed on the turned "
        "grid, but each tile's own pixels are not rotated, so seams may show; align the "
        "camera to the stage"
    )


def _unlinked(labels: list[str], accepted: int, pairs: int) -> str | None:
    """Why the registration cannot be trusted, when fewer than half the tiles are registered
    (a scrambled layout, the wrong overlap, or little content in the overlaps); else None."""
    n, ok = len(labels), labels.count("registered")
    if n < 2 or 2 * ok >= n:
        return None
    return (
        f"only {ok} of {n} tiles were registered on their overlaps ({labels.count('stage-model')} "
        f"placed by the stage model, {labels.count('isolated')} isolated; {accepted} of {pairs} "
        "links accepted): most tiles would sit where the layout guesses, not where the "
        "images match. Check the overlap, the tile order and the positions' axes (the "
        "report's pairs say why each link was refused)"
    )


def _measure(
    tiles: TileSet, layout: Layout, max_shift: float, *, null: bool = True
) -> tuple[list[PairShift], list[float], list[float], tuple[int, int]]:
    """Every neighbouring pair's shift, (with ``null``) the null scores and per pair the best
    of its own decoys' scores (nan without), and (bytes read, bytes of the strips), computed
    on the active scheduler from partial reads of the strips."""
    idx = {k: i for i, k in enumerate(layout.keys)}
    geoms = []
    for a, b in neighbour_pairs(layout):
        nominal = tuple(layout.positions[idx[b]] - layout.positions[idx[a]])
        g = pair_geometry(a, b, nominal, layout.tile_yx, margin=math.ceil(max_shift))
        if g is not None:
            geoms.append(g)
    # enough null samples for a 99th percentile; none when only the pairs are wanted
    decoys = 0 if not null else 1 if len(geoms) >= 50 else 3
    size = _batch_size(len(geoms))
    task = dask.delayed(_pairs_task, pure=True)
    batches = []
    for i in range(0, len(geoms), size):
        batch = geoms[i : i + size]
        keys = list(dict.fromkeys(k for g in batch for k in (g.a, g.b)))
        place = {k: j for j, k in enumerate(keys)}
        pairs = [(place[g.a], place[g.b], g) for g in batch]
        batches.append(task(tiles.region_reader(keys), pairs, max_shift, decoys))
    results = [r for batch in _compute(batches) for r in batch] if batches else []
    planes = math.prod(tiles.shape[:-2])
    strip_bytes = sum(2 * math.prod(g.strip_yx) for g in geoms) * planes * tiles.dtype.itemsize
    own = []
    for r in results:
        scores = [s for s in r[1] if math.isfinite(s)]
        own.append(max(scores) if scores else float("nan"))
    return (
        [r[0] for r in results],
        [s for r in results for s in r[1] if math.isfinite(s)],
        own,
        (sum(r[2] for r in results), strip_bytes),
    )
