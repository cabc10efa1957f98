"""``--flatfield estimate`` on data it was not developed on, as a user runs it.

``bench_writer.py``'s tiles (cut from a real backscattered-electron micrograph, Poisson noise,
+-20 px jitter, a positions CSV), darkened by a cos^4 falloff (a 35 degree half field, centred
off-axis; not the Gaussian the tests use). Side by side in each round: the CLI's wall time
without correction and with ``--flatfield estimate`` (process and cluster start included).
Then the mean relative mismatch between overlapping tiles at their true positions: raw,
divided by the estimated profile, and divided by the true one (the floor the noise sets).

    python benchmarks/bench_flatfield.py --grid 4 --tile 1024 --rounds 2 \\
        --markdown benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import numpy as np
import tifffile
from _common import append_markdown, run_measured
from bench_writer import make_job


def _falloff(n: int) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n]
    r = np.hypot((yy - 0.55 * n) / n, (xx - 0.45 * n) / n)
    return (np.cos(np.arctan(r * 2 * np.tan(np.radians(35)))) ** 4).astype(np.float32)


def _mismatch(tiles: dict, pos: dict, n: int) -> float:
    out = []
    for (r, c), a in tiles.items():
        for nb in ((r, c + 1), (r + 1, c)):
            if nb in tiles:
                (ya, xa), (yb, xb) = pos[(r, c)], pos[nb]
                y0, y1, x0, x1 = max(ya, yb), min(ya, yb) + n, max(xa, xb), min(xa, xb) + n
                pa = a[y0 - ya : y1 - ya, x0 - xa : x1 - xa].astype(np.float64)
                pb = tiles[nb][y0 - yb : y1 - yb, x0 - xb : x1 - xb].astype(np.float64)
                out.append(np.abs(pa - pb).mean() / (0.5 * (pa + pb).mean()))
    return float(np.mean(out))


def _divided(tiles: dict, profile: np.ndarray) -> dict:
    return {k: np.clip(np.rint(t.astype(np.float32) / profile), 0, 65535) for k, t in tiles.items()}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--grid", type=int, default=4)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "_data")
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    n = args.tile
    pattern, positions = make_job(args.data, args.grid, n, 0.1)
    with open(positions) as fh:
        pos = {
            (int(r["row"]), int(r["col"])): (int(r["y"]), int(r["x"])) for r in csv.DictReader(fh)
        }
    fall = _falloff(n)
    folder = Path(pattern).parent / "vignetted"
    folder.mkdir(exist_ok=True)
    tiles = {}
    for k in pos:
        tiles[k] = np.rint(tifffile.imread(pattern.format(row=k[0], col=k[1])) * fall)
        tiles[k] = tiles[k].astype(np.uint16)
        tifffile.imwrite(folder / f"t_{k[0]}_{k[1]}.tif", tiles[k])
    out = folder / "out"
    out.mkdir(exist_ok=True)
    base = [sys.executable, "-m", "lazystitch", "stitch", "--tiles", str(folder / "t_{row}_{col}.tif"),
            "--positions", str(positions), "--workers", str(args.workers), "--quiet",
            "--overwrite"]  # fmt: skip
    times: dict[str, list[float]] = {"none": [], "estimate": []}
    for r in range(args.rounds):
        for name, extra in (("none", []), ("estimate", ["--flatfield", "estimate"])):
            wall, _, _ = run_measured([*base, *extra, "--out", str(out / f"{name}.h5")])
            times[name].append(wall)
            print(f"round {r} {name:8s} {wall:5.1f} s", flush=True)
    estimate = tifffile.imread(out / "estimate.flatfield.tif")
    true = fall / fall.mean()
    raw, est, floor = (
        _mismatch(t, pos, n) for t in (tiles, _divided(tiles, estimate), _divided(tiles, true))
    )
    none_s, est_s = (statistics.median(times[k]) for k in ("none", "estimate"))
    table = "\n".join([
        f"| {args.grid}x{args.grid} x {n}^2, {args.workers} workers | value |",
        "|---|---|",
        f"| wall s, no correction (every run) | {none_s:.1f} ({', '.join(f'{t:.1f}' for t in times['none'])}) |",
        f"| wall s, --flatfield estimate (every run) | {est_s:.1f} ({', '.join(f'{t:.1f}' for t in times['estimate'])}) |",
        f"| overlap mismatch: raw / estimated profile / true profile | {raw:.4f} / {est:.4f} / {floor:.4f} |",
        f"| seams cut | {raw / est:.2f}x (the true profile: {raw / floor:.2f}x) |",
        f"| estimated / true profile, std | {float((estimate / true).std()):.4f} |",
    ])  # fmt: skip
    append_markdown(args.markdown, "Flat-field estimate on vignetted micrograph tiles", table,
                    redact={"--data": "DATA"})  # fmt: skip


if __name__ == "__main__":
    main()
