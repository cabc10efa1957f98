"""End-to-end wall time and peak RSS: lazystitch vs a naive in-memory NumPy + h5py stitch.

For each grid (N x N tiles of T x T uint16, 10 % overlap) this makes the tiles once (cached in
--data), then runs, side by side in one session, as separate processes:

* ``lazystitch stitch`` (CLI, LocalCluster with --workers worker processes, cluster start
  included, uncompressed 1024x1024 chunks), once with ``--blend last`` and once with ``linear``;
* the naive baseline: read every tile into one NumPy mosaic (last tile wins), write it with h5py
  into one contiguous dataset, fsync.

Peak RSS is the maximum over time of the summed RSS of the process and all its children
(client, scheduler, nannies, workers), sampled every 50 ms.

    python benchmarks/bench_e2e.py --grids 4 8 14 --tile 2048 --markdown benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import tifffile
from _common import append_markdown, run_measured

NAIVE = textwrap.dedent(
    """
    import os, sys, h5py, numpy as np, tifffile
    pattern, n, tile, overlap, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    step = tile - overlap
    size = step * (n - 1) + tile
    mosaic = np.zeros((size, size), np.uint16)
    for r in range(n):
        for c in range(n):
            mosaic[r * step:r * step + tile, c * step:c * step + tile] = tifffile.imread(pattern.format(row=r, col=c))
    with h5py.File(out, "w") as f:
        f.create_dataset("mosaic", data=mosaic)
    fd = os.open(out, os.O_RDONLY); os.fsync(fd); os.close(fd)
    """
)


def specimen_tile(y0: int, x0: int, tile: int) -> np.ndarray:
    """Pixels of one deterministic global pattern (so overlaps agree) at [y0:y0+T, x0:x0+T]."""
    y = np.arange(y0, y0 + tile, dtype=np.int64)[:, None]
    x = np.arange(x0, x0 + tile, dtype=np.int64)[None, :]
    smooth = 12000 * (2 + np.sin(y / 97.0) + np.cos(x / 131.0) + np.sin((x + y) / 53.0))
    noise = ((y * 73856093) ^ (x * 19349663)) % 2000
    return (smooth + noise).astype(np.uint16)


def make_grid(root: Path, n: int, tile: int, overlap: int) -> str:
    folder = root / f"grid{n}x{n}_{tile}"
    pattern = str(folder / "t_r{row:03d}_c{col:03d}.tif")
    done = folder / "COMPLETE"
    if done.exists():
        return pattern
    folder.mkdir(parents=True, exist_ok=True)
    step = tile - overlap
    for r in range(n):
        for c in range(n):
            tifffile.imwrite(pattern.format(row=r, col=c), specimen_tile(r * step, c * step, tile))
    done.write_text("ok")
    return pattern


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--grids", type=int, nargs="+", default=[4, 8, 14])
    ap.add_argument("--tile", type=int, default=2048)
    ap.add_argument("--overlap", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "_data")
    ap.add_argument("--markdown", type=Path, help="append a results table to this file")
    args = ap.parse_args()
    overlap = round(args.overlap * args.tile)
    rows = []
    for n in args.grids:
        pattern = make_grid(args.data, n, args.tile, overlap)
        out_dir = args.data / "out"
        out_dir.mkdir(exist_ok=True)
        res = {"grid": f"{n}x{n}", "tiles": n * n}
        for name in ("naive", "last", "linear"):
            out = out_dir / f"{name}_{n}.h5"
            out.unlink(missing_ok=True)
            if name == "naive":
                cmd = [
                    sys.executable,
                    "-c",
                    NAIVE,
                    pattern,
                    str(n),
                    str(args.tile),
                    str(overlap),
                    str(out),
                ]
            else:
                cmd = [
                    sys.executable,
                    "-m",
                    "lazystitch",
                    "stitch",
                    "--tiles",
                    pattern,
                    "--grid",
                    f"{n}x{n}",
                    "--overlap",
                    str(overlap),
                    "--blend",
                    name,
                    "--out",
                    str(out),
                    "--chunks",
                    "1024,1024",
                    "--compression",
                    "none",
                    "--workers",
                    str(args.workers),
                    "--json",
                    "--quiet",
                ]
            wall, peak, stdout = run_measured(cmd)
            res[f"{name}_s"], res[f"{name}_rss_mb"] = wall, peak / 2**20
            if name != "naive":
                res["mosaic_mb"] = (
                    np.prod(json.loads(stdout.strip().splitlines()[-1])["shape"]) * 2 / 2**20
                )
            out.unlink(missing_ok=True)
            print(f"{n}x{n} {name:7s} {wall:7.1f} s  peak RSS {peak / 2**20:8.0f} MB", flush=True)
        rows.append(res)
    header = (
        "| grid | tiles | mosaic MB | naive s | lazystitch last s | ratio | lazystitch linear s | ratio "
        "| naive peak RSS MB | last peak RSS MB | linear peak RSS MB |\n|" + "---|" * 11
    )
    lines = [header]
    for r in rows:
        lines.append(
            f"| {r['grid']} | {r['tiles']} | {r['mosaic_mb']:.0f} | {r['naive_s']:.1f} | {r['last_s']:.1f} "
            f"| {r['last_s'] / r['naive_s']:.2f}× | {r['linear_s']:.1f} | {r['linear_s'] / r['naive_s']:.2f}× "
            f"| {r['naive_rss_mb']:.0f} | {r['last_rss_mb']:.0f} | {r['linear_rss_mb']:.0f} |"
        )
    append_markdown(
        args.markdown,
        f"End to end, {args.tile}² uint16 tiles, {overlap} px overlap, {args.workers} workers",
        "\n".join(lines),
    )


if __name__ == "__main__":
    main()
