"""Every output format end to end as a user runs it, side by side in one run.

The job of ``bench_writer.py`` (tiles cut from a real micrograph at jittered CSV positions,
``linear`` blend, 2 workers, the pyramid, process and cluster start included), written as
plain HDF5 (with and without the preview picture, with the tile map), BigDataViewer, OME-Zarr 0.5 (plain, with
the tile map, and with Zarr v3 shards of 4 x 4 chunks), OME-Zarr 0.4 and pyramidal OME-TIFF. Each run's wall
time is given as a ratio to the plain HDF5 run's in the same round; ``--repeat`` rounds, in
an order that rotates from round to round.

    python benchmarks/bench_formats.py --grid 8 --repeat 2 --markdown benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from _common import append_markdown, run_measured
from bench_writer import lazystitch_cmd, make_job

RUNS = {
    "hdf5": ("m.h5", ()),
    "hdf5 --no-preview": ("np.h5", ("--no-preview",)),
    "hdf5 --tile-map": ("tm.h5", ("--tile-map",)),
    "bdv": ("m.xml", ()),
    "ome-zarr 0.5": ("m.ome.zarr", ()),
    "ome-zarr 0.5 --tile-map": ("tm.ome.zarr", ("--tile-map",)),
    "ome-zarr 0.5 --shard 4,4": ("s.ome.zarr", ("--shard", "4,4")),
    "ome-zarr 0.4": ("v4.ome.zarr", ("--ome-zarr-version", "0.4")),
    "ome-tiff": ("m.ome.tif", ()),
}


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--grid", type=int, default=8)
    ap.add_argument("--tile", type=int, default=2048)
    ap.add_argument("--overlap", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "_data")
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    pattern, positions = make_job(args.data, args.grid, args.tile, args.overlap)
    out = args.data / "formats"
    names = list(RUNS)
    times: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    rss: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for r in range(args.repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        round_s: dict[str, float] = {}
        for name in order:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            target, extra = RUNS[name]
            wall, peak, stdout = run_measured(
                lazystitch_cmd(pattern, positions, out / target, args.workers, *extra)
            )
            summary = json.loads(stdout.strip().splitlines()[-1])
            sizes[name] = sum(_size(Path(f)) for f in summary["files"] if os.path.exists(f))
            round_s[name] = wall
            rss[name] = max(rss.get(name, 0), peak / 2**20)
            print(
                f"round {r + 1} {name:26s} {wall:6.1f} s  {sizes[name] / 2**20:7.0f} MB", flush=True
            )
        for name in names:
            times[name].append(round_s[name])
            ratios[name].append(round_s[name] / round_s["hdf5"])
    shutil.rmtree(out, ignore_errors=True)
    lines = [
        "| format | wall s (each round) | ÷ plain HDF5 in the same round | MB written | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        lines.append(
            f"| {name} | {' / '.join(f'{t:.1f}' for t in times[name])} | "
            f"{' / '.join(f'{x:.2f}×' for x in ratios[name])} | {sizes[name] / 2**20:.0f} | "
            f"{rss[name]:.0f} |"
        )
    table = "\n".join(lines)
    append_markdown(
        args.markdown,
        f"Every output format, {args.grid}x{args.grid} tiles of {args.tile}² uint16 (cut from a "
        f"real micrograph), CSV positions with jitter, linear, {args.workers} workers, the pyramid",
        table,
        redact={"--data": "DIR"},
    )


if __name__ == "__main__":
    main()
