"""Layout sanity: when a group of links fails, test the usual mix-ups and name the fix.

A grid's mix-ups are in how its files are numbered (mirrored, snaking, transposed); a positions
CSV's are in its stage axes (a y or x that runs against the image's, y and x exchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from lazystitch._typing import TileKey
from lazystitch.io import TileSet
from lazystitch.layout import Layout, grid_layout, orient_positions
from lazystitch.registration._pairwise import PairShift

__all__ = ["LayoutAdvice", "suspect_layout"]

Perm = Callable[[int, int, int, int], TileKey]

# (what it means, how to fix it, where the file named (r, c) really sits in an R x C grid)
ALTERNATIVES: list[tuple[str, str, Perm]] = [
    (
        "the columns are mirrored (numbered right to left)",
        "number the columns the other way, or mirror the grid (col -> cols-1-col)",
        lambda r, c, R, C: (r, C - 1 - c),
    ),
    (
        "the rows are mirrored (numbered bottom to top)",
        "number the rows the other way, or mirror the grid (row -> rows-1-row)",
        lambda r, c, R, C: (R - 1 - r, c),
    ),
    (
        "the stage moved in a snake (every other row backwards)",
        "use --order snake-row (tiles.order: snake-row)",
        lambda r, c, R, C: (r, C - 1 - c) if r % 2 else (r, c),
    ),
    (
        "the stage moved in a snake by columns (every other column backwards)",
        "use --order snake-column (tiles.order: snake-column)",
        lambda r, c, R, C: (R - 1 - r, c) if c % 2 else (r, c),
    ),
    (
        "rows and columns are swapped",
        "swap {row} and {col} in --tiles, or use --order column for an {index} pattern",
        lambda r, c, R, C: (c, r),
    ),
]


# (what it means, the turn of the positions as given that would undo it)
AXIS_ALTERNATIVES: list[tuple[str, dict[str, bool]]] = [
    ("the positions' y axis runs against the image's (row 0 at the bottom)", {"flip_y": True}),
    ("the positions' x axis runs against the image's (right to left)", {"flip_x": True}),
    ("both axes of the positions run backwards (the stage turned by 180 degrees)",
     {"flip_y": True, "flip_x": True}),
    ("the positions' y and x are exchanged", {"swap_xy": True}),
    ("the positions' y and x are exchanged, and y runs backwards",
     {"swap_xy": True, "flip_y": True}),
    ("the positions' y and x are exchanged, and x runs backwards",
     {"swap_xy": True, "flip_x": True}),
    ("the positions' y and x are exchanged, and both run backwards",
     {"swap_xy": True, "flip_y": True, "flip_x": True}),
]  # fmt: skip


def _then(given: dict, turn: dict) -> dict[str, bool]:
    """The axes options that give ``turn`` applied after ``given`` (both swap, then flip)."""
    s1, y1, x1 = (bool(given.get(k)) for k in ("swap_xy", "flip_y", "flip_x"))
    s2, y2, x2 = (bool(turn.get(k)) for k in ("swap_xy", "flip_y", "flip_x"))
    if s2:  # exchanging the axes moves the flips already made to the other axis
        y1, x1 = x1, y1
    return {"swap_xy": s1 != s2, "flip_y": y1 != y2, "flip_x": x1 != x2}


def _axes_fix(given: dict, turn: dict) -> str:
    want = _then(given, turn)
    flags = " ".join(f"--{k.replace('_', '-')}" for k, on in want.items() if on)
    keys = ", ".join(f"layout.{k}: {str(on).lower()}" for k, on in want.items())
    return f"run with {flags or 'none of --swap-xy, --flip-y, --flip-x'} ({keys})"


@dataclass(frozen=True)
class LayoutAdvice:
    """What seems wrong with a grid, and the evidence."""

    problem: str
    fix: str
    matched_as_given: tuple[int, int]
    matched_if_fixed: tuple[int, int]

    def message(self) -> str:
        a, n = self.matched_as_given
        b, m = self.matched_if_fixed
        return (
            f"the tile layout looks wrong: as given, {a} of {n} neighbouring pairs match; "
            f"if {self.problem}, {b} of {m} do. Fix: {self.fix}"
        )


def _broken_group(pairs: list[PairShift], threshold: float) -> bool:
    """Whether the links of one direction (right or down), in even or odd rows (columns), mostly
    fail: the fingerprint of a mirrored, snaking or transposed grid."""
    groups: dict[tuple[str, int], list[float]] = {}
    for p in pairs:
        right = p.b[1] != p.a[1]
        key = ("right", p.a[0] % 2) if right else ("down", p.a[1] % 2)
        groups.setdefault(key, []).append(p.score if p.ok else -1.0)
    return any(len(v) >= 2 and float(np.median(v)) < threshold for v in groups.values())


def suspect_layout(
    tiles: TileSet,
    layout: Layout,
    pairs: list[PairShift],
    threshold: float,
    run: Callable[[TileSet, Layout], tuple[int, int]],
) -> LayoutAdvice | None:
    """Try the usual mix-ups of a layout when a whole group of its links fails: a grid's
    numbering (:data:`ALTERNATIVES`), a positions CSV's stage axes (:data:`AXIS_ALTERNATIVES`).

    ``run(tiles, layout) -> (matched, pairs)`` measures a rearranged layout. Returns advice when
    an alternative makes at least 80 % of the links match and 20 points more than as given.
    """
    if layout.kind not in ("grid", "positions") or not pairs:
        return None
    if not _broken_group(pairs, threshold):
        return None
    matched = sum(p.ok and p.score >= threshold for p in pairs)
    best: LayoutAdvice | None = None
    for problem, fix, alt_tiles, alt_layout in _alternatives(tiles, layout):
        ok, n = run(alt_tiles, alt_layout)
        better = best is None or ok / n > best.matched_if_fixed[0] / best.matched_if_fixed[1]
        if n and ok / n >= 0.8 and ok / n >= matched / len(pairs) + 0.2 and better:
            best = LayoutAdvice(problem, fix, (matched, len(pairs)), (ok, n))
    return best


def _alternatives(tiles: TileSet, layout: Layout) -> Iterator[tuple[str, str, TileSet, Layout]]:
    """(problem, fix, tiles, layout) for each mix-up that applies to ``layout``."""
    if layout.kind == "positions":
        given = layout.description.get("axes", {})
        for problem, turn in AXIS_ALTERNATIVES:
            turned = Layout(
                keys=layout.keys,
                positions=orient_positions(layout.positions, **turn),
                tile_yx=layout.tile_yx,
                kind="positions",
                description={**layout.description, "axes": _then(given, turn)},
            )
            yield problem, _axes_fix(given, turn), tiles, turned
        return
    rows = max(r for r, _ in layout.keys) + 1
    cols = max(c for _, c in layout.keys) + 1
    oy, ox = layout.description.get("overlap_px", (0, 0))
    for problem, fix, perm in ALTERNATIVES:
        if problem.startswith("rows and columns") and rows != cols:
            continue
        moved = {(r, c): perm(r, c, rows, cols) for r, c in tiles.keys}
        if set(moved.values()) != set(tiles.keys):
            continue
        alt = tiles.with_keys(moved)
        yield problem, fix, alt, grid_layout(rows, cols, layout.tile_yx, (oy, ox))
