"""A picture of the registration: the tile graph, links coloured by score, tiles by residual."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["plot_registration"]


def _colour(v: float, lo: float, hi: float) -> tuple[int, int, int]:
    """Red (lo) to green (hi); grey for nan."""
    if not math.isfinite(v):
        return (150, 150, 150)
    f = min(1.0, max(0.0, (v - lo) / (hi - lo))) if hi > lo else 1.0
    return (int(220 * (1 - f)), int(180 * f + 20), 40)


def plot_registration(registration, path: str | Path, *, size: int = 900) -> Path:
    """Draw tiles at their registered positions and every link between neighbours.

    Links: green (high NCC) to red (threshold), dashed grey when rejected. Tile outlines: green
    (small residual) to red (``max_residual`` or more); blue for ``stage-model`` and orange for
    ``isolated`` tiles. Written as PNG.
    """
    from PIL import Image, ImageDraw

    sol = registration.solution
    h, w = registration.layout.tile_yx
    pos = sol.positions - sol.positions.min(axis=0)
    extent = np.add(pos.max(axis=0), (h, w))
    scale = (size - 40) / float(max(extent))
    img = Image.new("RGB", (int(extent[1] * scale) + 40, int(extent[0] * scale) + 60), "white")
    draw = ImageDraw.Draw(img)
    centre = {
        k: (20 + (p[1] + w / 2) * scale, 20 + (p[0] + h / 2) * scale)
        for k, p in zip(sol.keys, pos, strict=True)
    }
    for i, k in enumerate(sol.keys):
        y, x = pos[i] * scale + 20
        label = sol.labels[i]
        outline = {"stage-model": (40, 90, 220), "isolated": (240, 140, 0)}.get(
            label, _colour(-sol.residuals[i], -2.0, 0.0)
        )
        draw.rectangle([x, y, x + w * scale, y + h * scale], outline=outline, width=2)
        draw.text((x + 4, y + 3), f"{k[0]},{k[1]}", fill=(60, 60, 60))
    thr = registration.threshold
    for p, ok in zip(registration.pairs, sol.accepted, strict=True):
        a, b = centre[p.a], centre[p.b]
        if ok:
            draw.line([a, b], fill=_colour(p.score, thr, 1.0), width=4)
        else:
            n = 12
            for s in range(0, n, 2):
                draw.line(
                    [
                        tuple(np.add(a, np.subtract(b, a) * s / n)),
                        tuple(np.add(a, np.subtract(b, a) * (s + 1) / n)),
                    ],
                    fill=(160, 160, 160),
                    width=2,
                )
    counts = {lab: sol.labels.count(lab) for lab in ("registered", "stage-model", "isolated")}
    draw.text(
        (20, img.height - 30),
        f"links: green = high NCC, red = threshold {thr:.2f}, dashed = rejected | "
        + ", ".join(f"{n} {lab}" for lab, n in counts.items()),
        fill=(0, 0, 0),
    )
    path = Path(path)
    img.save(path)
    return path
