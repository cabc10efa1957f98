"""The writer end to end as a user runs it: the CLI's wall time and peak RSS, side by side.

Tiles are cut from a real image (a backscattered-electron micrograph from
``tests/data/stitch2d_bse_3x2``, mirrored out to the mosaic's size, with Poisson noise per
tile), at stage positions with +-20 px of jitter given as a positions CSV: not the
generator the code was developed on. For each grid of N x N tiles of T x T uint16, as
separate processes in one run:

* ``naive``: read every tile into one NumPy mosaic at its CSV position (last wins), write it
  with h5py into one contiguous dataset, fsync;
* ``lazystitch`` with the defaults (the pyramid, a LocalCluster of --workers), and with
  ``--no-pyramid``: ``lazystitch stitch --positions CSV --blend linear``, process start,
  imports and cluster start included;
* ``raw``: ``os.write`` + ``fsync`` of as many bytes as the default run wrote (the disk is the
  floor).

Peak RSS is the maximum over time of the summed RSS of the process and its children.

    python benchmarks/bench_writer.py --grids 4 8 14 20 --small 25 50 100 \\
        --markdown benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from _common import append_markdown, run_measured

SOURCE = Path(__file__).parent.parent / "tests" / "data" / "stitch2d_bse_3x2" / "tiles"

NAIVE = textwrap.dedent(
    """
    import csv, os, sys, h5py, numpy as np, tifffile
    pattern, positions, tile, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rows = list(csv.DictReader(open(positions)))
    ys = [int(round(float(r["y"]))) for r in rows]
    xs = [int(round(float(r["x"]))) for r in rows]
    y0, x0 = min(ys), min(xs)
    mosaic = np.zeros((max(ys) - y0 + tile, max(xs) - x0 + tile), np.uint16)
    for r, y, x in zip(rows, ys, xs):
        t = tifffile.imread(pattern.format(row=int(r["row"]), col=int(r["col"])))
        mosaic[y - y0:y - y0 + tile, x - x0:x - x0 + tile] = t
    with h5py.File(out, "w") as f:
        f.create_dataset("mosaic", data=mosaic)
    fd = os.open(out, os.O_RDONLY); os.fsync(fd); os.close(fd)
    """
)

RAW = textwrap.dedent(
    """
    import os, sys
    out, nbytes = sys.argv[1], int(sys.argv[2])
    block = os.urandom(1 << 20) * 16
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    left = nbytes
    while left > 0:
        left -= os.write(fd, block[: min(left, len(block))])
    os.fsync(fd); os.close(fd)
    """
)


def _source() -> np.ndarray:
    img = iio.imread(sorted(SOURCE.glob("*"))[0])
    if img.ndim == 3:
        img = img[..., :3].mean(axis=-1)
    return (img.astype(np.float32) * 200 + 1000).astype(np.uint16)


def _mirrored(n: int, start: int, count: int) -> np.ndarray:
    """Indices start..start+count into a length-n axis mirrored out without end."""
    k = np.arange(start, start + count) % (2 * n)
    return np.where(k < n, k, 2 * n - 1 - k)


def window(img: np.ndarray, y: int, x: int, size: int) -> np.ndarray:
    """``size x size`` pixels at (y, x) of the image mirrored out to any extent."""
    return img[np.ix_(_mirrored(img.shape[0], y, size), _mirrored(img.shape[1], x, size))]


def make_job(root: Path, n: int, tile: int, overlap: float, seed: int = 0) -> tuple[str, Path]:
    folder = root / f"real{n}x{n}_{tile}"
    pattern = str(folder / "t_r{row:03d}_c{col:03d}.tif")
    positions = folder / "positions.csv"
    if (folder / "COMPLETE").exists():
        return pattern, positions
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    step = tile - round(overlap * tile)
    jitter = min(20, max(1, tile // 16))
    img = _source()
    with open(positions, "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["row", "col", "y", "x"])
        for r in range(n):
            for c in range(n):
                y = jitter + r * step + int(rng.integers(-jitter, jitter + 1))
                x = jitter + c * step + int(rng.integers(-jitter, jitter + 1))
                t = window(img, y, x, tile)
                noisy = rng.poisson(t.astype(np.float64) / 64).astype(np.float64) * 64
                tifffile.imwrite(
                    pattern.format(row=r, col=c), np.clip(noisy, 0, 65535).astype(np.uint16)
                )
                wr.writerow([r, c, y, x])
    (folder / "COMPLETE").write_text("ok")
    return pattern, positions


def lazystitch_cmd(pattern, positions, out, workers, *extra):
    return [
        sys.executable, "-m", "lazystitch", "stitch", "--tiles", pattern,
        "--positions", str(positions), "--blend", "linear", "--out", str(out),
        "--workers", str(workers), "--json", "--quiet", *extra,
    ]  # fmt: skip


def stored_bytes(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        names = list(f["mosaic"].attrs["lazystitch_levels"])
        return sum(f[n].id.get_storage_size() for n in names)


def bench_grid(root: Path, n: int, tile: int, overlap: float, workers: int) -> dict:
    pattern, positions = make_job(root, n, tile, overlap)
    out_dir = root / "out"
    out_dir.mkdir(exist_ok=True)
    res: dict = {"grid": f"{n}x{n}", "tiles": n * n, "tile": tile}
    runs = {
        "naive": [
            sys.executable,
            "-c",
            NAIVE,
            pattern,
            str(positions),
            str(tile),
            str(out_dir / "naive.h5"),
        ],
        "pyramid": lazystitch_cmd(pattern, positions, out_dir / "pyr.h5", workers),
        "flat": lazystitch_cmd(pattern, positions, out_dir / "flat.h5", workers, "--no-pyramid"),
    }
    for name, cmd in runs.items():
        for f in out_dir.glob("*"):
            f.unlink()
        wall, peak, stdout = run_measured(cmd)
        res[f"{name}_s"], res[f"{name}_rss"] = wall, peak / 2**20
        if name != "naive":
            summary = json.loads(stdout.strip().splitlines()[-1])
            res[f"{name}_bytes"] = stored_bytes(Path(summary["out"]))
            res["mosaic_mb"] = np.prod(summary["shape"]) * 2 / 2**20
        print(
            f"{n}x{n} x {tile} {name:8s} {wall:7.1f} s  peak RSS {peak / 2**20:7.0f} MB", flush=True
        )
    for f in out_dir.glob("*"):
        f.unlink()
    wall, _, _ = run_measured([sys.executable, "-c", RAW, str(out_dir / "raw.bin"),
                               str(res["pyramid_bytes"])])  # fmt: skip
    res["raw_s"] = wall
    (out_dir / "raw.bin").unlink()
    print(
        f"{n}x{n} x {tile} raw      {wall:7.1f} s  ({res['pyramid_bytes'] / 2**20:.0f} MB)",
        flush=True,
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--grids", type=int, nargs="*", default=[4, 8, 14])
    ap.add_argument("--tile", type=int, default=2048)
    ap.add_argument("--small", type=int, nargs="*", default=[], help="grids of 64 px tiles")
    ap.add_argument("--overlap", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "_data")
    ap.add_argument("--markdown", type=Path, help="append the results tables to this file")
    args = ap.parse_args()
    big = [bench_grid(args.data, n, args.tile, args.overlap, args.workers) for n in args.grids]
    small = [bench_grid(args.data, n, 64, args.overlap, args.workers) for n in args.small]
    tables = []
    if big:
        lines = [
            "| grid | mosaic MB | naive s | lazystitch s (pyramid) | ÷ raw write of its bytes "
            "| lazystitch --no-pyramid s | ÷ naive | raw write+fsync s (MB) "
            "| peak RSS MB naive / pyramid / no-pyramid |",
            "|" + "---|" * 9,
        ]
        for r in big:
            lines.append(
                f"| {r['grid']} | {r['mosaic_mb']:.0f} | {r['naive_s']:.1f} | {r['pyramid_s']:.1f} "
                f"| {r['pyramid_s'] / r['raw_s']:.2f}× | {r['flat_s']:.1f} "
                f"| {r['flat_s'] / r['naive_s']:.2f}× | {r['raw_s']:.1f} ({r['pyramid_bytes'] / 2**20:.0f}) "
                f"| {r['naive_rss']:.0f} / {r['pyramid_rss']:.0f} / {r['flat_rss']:.0f} |"
            )
        tables.append("\n".join(lines))
    if small:
        lines = [
            "| tiles of 64² | mosaic MB | naive s | lazystitch s (pyramid) | ms per tile "
            "| --no-pyramid s | ms per tile | peak RSS MB (pyramid) |",
            "|" + "---|" * 8,
        ]
        for r in small:
            lines.append(
                f"| {r['tiles']} | {r['mosaic_mb']:.0f} | {r['naive_s']:.1f} | {r['pyramid_s']:.1f} "
                f"| {1000 * r['pyramid_s'] / r['tiles']:.1f} | {r['flat_s']:.1f} "
                f"| {1000 * r['flat_s'] / r['tiles']:.1f} | {r['pyramid_rss']:.0f} |"
            )
        tables.append("\n".join(lines))
    append_markdown(
        args.markdown,
        "Writer end to end: tiles cut from a real micrograph, CSV positions with jitter, "
        f"linear blend, {args.workers} workers",
        "\n\n".join(tables),
    )


if __name__ == "__main__":
    main()
