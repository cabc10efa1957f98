"""What the tile sources and the corrections cost, end to end as a user runs them.

The tiles of ``bench_writer.py`` (cut from a real micrograph, Poisson noise, +-jitter px, a
positions CSV), N x N of T x T uint16, stitched with ``--no-pyramid --blend linear`` on
``--workers`` (process, imports and cluster start included), in rounds that alternate the
variants so that a slow minute of the machine hits them all alike:

* ``tiff``: the TIFF files by pattern (the baseline of every ratio);
* ``hdf5``: the same tiles as datasets of one HDF5 file (chunked 256 x 256);
* ``zarr``: the same tiles as arrays of a Zarr v3 group (chunks 256 x 256);
* ``ome-metadata``: OME-TIFFs placed by their stage positions (``--positions metadata``);
* ``flatfield``: ``--flatfield PROFILE.tif`` (a measured profile divided out in every read);
* ``estimate``: ``--flatfield estimate`` (the profile estimated from the overlaps first);
* ``preprocess``: ``--preprocess`` of a hook that subtracts each tile's 1st percentile.

    python benchmarks/bench_inputs.py --grid 8 --tile 1024 --rounds 3 \\
        --markdown benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from pathlib import Path

import h5py
import numpy as np
import tifffile
from _common import append_markdown, run_measured
from bench_writer import make_job

HOOK = """
import numpy as np

def subtract_background(tile):
    return np.clip(tile.astype(np.int32) - int(np.percentile(tile, 1)), 0, None).astype(tile.dtype)
"""


def _containers(pattern: str, positions: Path, folder: Path, px_um: float) -> dict[str, str]:
    """The job's tiles again as one HDF5 file, a Zarr group and OME-TIFFs with stage positions;
    a flat-field profile and the hook module."""
    import zarr

    with open(positions) as fh:
        rows = list(csv.DictReader(fh))
    h5 = folder / "tiles.h5"
    store = folder / "tiles.zarr"
    ome = folder / "ome"
    if not (folder / "CONTAINERS").exists():
        ome.mkdir(exist_ok=True)
        root = zarr.open_group(str(store), mode="w", zarr_format=3)
        with h5py.File(h5, "w") as f:
            for i, r in enumerate(rows):
                row, col = int(r["row"]), int(r["col"])
                tile = tifffile.imread(pattern.format(row=row, col=col))
                f.create_dataset(f"scan/t_{row}_{col}", data=tile, chunks=(256, 256))
                root.create_array(f"scan/t_{row}_{col}", data=tile, chunks=(256, 256))
                tifffile.imwrite(ome / f"Pos{i:04d}.ome.tif", tile, metadata={
                    "axes": "YX", "PhysicalSizeX": px_um, "PhysicalSizeY": px_um,
                    "Plane": {"PositionX": [float(r["x"]) * px_um],
                              "PositionY": [float(r["y"]) * px_um],
                              "PositionXUnit": ["µm"], "PositionYUnit": ["µm"]},
                })  # fmt: skip
        n = tifffile.imread(pattern.format(row=0, col=0)).shape[0]
        yy, xx = np.mgrid[0:n, 0:n] / (n - 1) - 0.5
        tifffile.imwrite(folder / "flat.tif", (1 - 0.6 * (yy**2 + xx**2)).astype(np.float32))
        (folder / "benchhooks.py").write_text(HOOK)
        (folder / "CONTAINERS").write_text("ok")
    return {
        "hdf5": f"{h5}:/scan/t_{{row}}_{{col}}",
        "zarr": f"{store}/scan/t_{{row}}_{{col}}",
        "ome": str(ome / "Pos{index:04d}.ome.tif"),
        "flat": str(folder / "flat.tif"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--grid", type=int, default=8)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "_data")
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    pattern, positions = make_job(args.data, args.grid, args.tile, 0.1)
    folder = Path(pattern).parent
    src = _containers(pattern, positions, folder, 0.65)
    out = args.data / "out_inputs"
    out.mkdir(exist_ok=True)
    env_path = f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    os.environ["PYTHONPATH"] = env_path  # the hook module, for the CLI and its workers
    base = ["--blend", "linear", "--no-pyramid", "--workers", str(args.workers), "--quiet"]
    csv_pos = ["--positions", str(positions)]
    variants = {
        "tiff": ["--tiles", pattern, *csv_pos],
        "hdf5": ["--tiles", src["hdf5"], *csv_pos],
        "zarr": ["--tiles", src["zarr"], *csv_pos],
        "ome-metadata": ["--tiles", src["ome"], "--positions", "metadata"],
        "flatfield": ["--tiles", pattern, *csv_pos, "--flatfield", src["flat"]],
        "estimate": ["--tiles", pattern, *csv_pos, "--flatfield", "estimate"],
        "preprocess": [
            "--tiles",
            pattern,
            *csv_pos,
            "--preprocess",
            "benchhooks:subtract_background",
        ],
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.rounds):
        for name, extra in variants.items():
            for f in out.glob("*"):
                f.unlink()
            cmd = [sys.executable, "-m", "lazystitch", "stitch", *extra, *base,
                   "--out", str(out / "m.h5")]  # fmt: skip
            wall, _, _ = run_measured(cmd)
            times[name].append(wall)
            print(f"round {r} {name:13s} {wall:6.1f} s", flush=True)
    ref = statistics.median(times["tiff"])
    lines = [
        f"| {args.grid}x{args.grid} x {args.tile}^2, --no-pyramid, {args.workers} workers "
        "| median s | ÷ tiff | every run s |",
        "|---|---|---|---|",
    ]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(
            f"| {name} | {med:.1f} | {med / ref:.2f} | {', '.join(f'{t:.1f}' for t in ts)} |"
        )
    append_markdown(
        args.markdown, "Tile sources and corrections", "\n".join(lines),
        redact={"--data": "DATA"},
    )  # fmt: skip


if __name__ == "__main__":
    main()
