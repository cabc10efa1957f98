"""Registration accuracy and time: lazystitch vs ASHLAR, side by side in one run.

Sets of N x N tiles of 1024^2 uint16 (10 % overlap, +-15 px sub-pixel stage jitter, Poisson +
Gaussian noise, vignetting, one empty tile), made by ``lazystitch.testing.make_registration_tiles``
and cached in --data: cut from a real image with --image (one of bench_accuracy.py's sources,
repeated periodically), else from the synthetic specimen. For each set:

* lazystitch, in-process (``lazystitch.registration.register`` on the threaded scheduler), and
  the CLI ``lazystitch register`` as a user runs it (its default in-process LocalCluster of 2
  threads; process start, imports and cluster start included), with the stages its JSON
  summary reports (start-up = wall time - the command's own clock);
* ASHLAR (``ashlar.reg.EdgeAligner`` with a ``FilePatternReader``), run by the Python given in
  --ashlar-python (a separate venv: ASHLAR is a benchmark-only extra, never a dependency),
  alternating with the CLI --repeats times; the ratio is each CLI run's wall time over the
  next ASHLAR ``run()``.

Errors are |position - truth| in px after removing the mean offset, over all tiles except the
empty one (which no method can place from its content).

    python benchmarks/bench_registration.py --grids 8 --image hubble --ashlar-python /path/to/venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from _common import append_markdown, position_errors, run_measured

ASHLAR = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    from ashlar import filepattern, reg
    path, pattern, overlap, max_shift, mosaic_out = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    reader = filepattern.FilePatternReader(path, pattern, overlap, pixel_size=1.0)
    t1 = time.perf_counter()
    aligner = reg.EdgeAligner(reader, channel=0, max_shift=max_shift, verbose=False, do_make_thumbnail=False)
    aligner.run()
    t2 = time.perf_counter()
    rc = [reader.metadata.tile_rc(i) for i in range(reader.metadata.num_images)]
    if mosaic_out:  # ASHLAR's own assembly (its default linear blend), for the PSNR
        import numpy as np
        np.save(mosaic_out, reg.Mosaic(aligner, aligner.mosaic_shape).assemble_channel(0))
    print(json.dumps({"rc": [list(map(int, x)) for x in rc], "positions": aligner.positions.tolist(),
                      "run_s": t2 - t1, "process_s": t2 - t0}))
    """
)


def psnr(mosaic: np.ndarray, positions: dict, origin, s, keys) -> float:
    """PSNR (dB) of a mosaic against the source image it was cut from.

    Mosaic pixel q shows source point q + origin + d, where d aligns the method's positions with
    the truth on average (the same alignment as the position errors). The source (smooth,
    noise-free) is sampled there by cubic interpolation; the mosaic's intensities are mapped to
    the source's by a least-squares gain and offset (the camera's photons and offset). Pixels
    are those inside the true footprint of the tiles, 4 px in, away from the empty tile.
    """
    from scipy import ndimage

    d = np.mean([np.subtract(s.true_positions[k], positions[k]) for k in keys], axis=0)
    shift = np.asarray(origin, dtype=float) + d
    h, w = s.tile_yx
    inside = np.zeros(s.image.shape, bool)
    for y, x in s.true_positions.values():
        inside[round(y) + 4 : round(y) + h - 4, round(x) + 4 : round(x) + w - 4] = True
    for k in s.empty:
        y, x = s.true_positions[k]
        inside[round(y) - 4 : round(y) + h + 4, round(x) - 4 : round(x) + w + 4] = False
    qy, qx = np.indices(mosaic.shape).reshape(2, -1)
    sy, sx = qy + shift[0], qx + shift[1]
    iy, ix = np.rint(sy).astype(int), np.rint(sx).astype(int)
    ok = (iy >= 0) & (ix >= 0) & (iy < inside.shape[0]) & (ix < inside.shape[1])
    ok[ok] = inside[iy[ok], ix[ok]]
    truth = ndimage.map_coordinates(s.image, [sy[ok], sx[ok]], order=3)
    got = mosaic[qy[ok], qx[ok]].astype(np.float64)
    gain, offset = np.polyfit(got, truth, 1)
    mse = np.mean((gain * got + offset - truth) ** 2)
    return float(10 * np.log10(np.ptp(truth) ** 2 / mse))


def stats(e: np.ndarray) -> str:
    return f"{np.median(e):.2f} / {np.percentile(e, 95):.2f} / {e.max():.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--grids", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--jitter", type=float, default=15.0)
    ap.add_argument("--max-shift", type=float, default=35.0)
    ap.add_argument(
        "--image",
        help="cut the tiles from this real image (a name of bench_accuracy.py's sources: "
        "retina, hubble, mist, bse, czi, starrynight); default: the synthetic specimen",
    )
    ap.add_argument("--repeats", type=int, default=3, help="CLI and ASHLAR runs, alternating")
    ap.add_argument("--ashlar-python", help="python of a venv with `pip install ashlar`")
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "_data")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--no-psnr", dest="psnr", action="store_false", help="skip the mosaics' PSNR")
    args = ap.parse_args()

    from lazystitch.io import open_tiles_pattern
    from lazystitch.layout import grid_layout
    from lazystitch.registration import register
    from lazystitch.testing import make_registration_tiles

    image = None
    if args.image:
        from bench_accuracy import sources

        image = sources()[args.image]()
    lines = [
        "| grid | method | median / p95 / max error (px) | wall time | notes |",
        "|---|---|---|---|---|",
    ]
    for n in args.grids:
        folder = args.data / f"reg{n}x{n}_{args.tile}_{args.image or 'synthetic'}"
        s = make_registration_tiles(
            folder,
            grid=(n, n),
            tile_yx=(args.tile, args.tile),
            overlap=0.1,
            jitter=args.jitter,
            empty=[(1, 2)],
            seed=3,
            image=image,
        )
        truth = s.true_positions
        keys = list(truth)
        # lazystitch in-process (threaded scheduler)
        tiles = open_tiles_pattern(s.pattern, keys)
        lay = grid_layout(n, n, tiles.tile_yx, s.overlap_px)
        t0 = time.perf_counter()
        reg = register(tiles, lay, max_shift=args.max_shift)
        ls_s = time.perf_counter() - t0
        pos = dict(zip(reg.layout.keys, map(tuple, reg.layout.positions), strict=True))
        e = position_errors(pos, truth, _placed(s))
        labels = reg.labels
        lines.append(
            f"| {n}x{n} | lazystitch (in-process) | {stats(e)} | {ls_s:.1f} s | "
            f"{sum(v == 'registered' for v in labels.values())} registered, empty tile: "
            f"{labels[(1, 2)]}; threaded scheduler |"
        )
        print(lines[-1], flush=True)
        common = [
            "--tiles", s.pattern, "--grid", f"{n}x{n}",
            "--overlap", f"{s.overlap_px[0]},{s.overlap_px[1]}",
            "--max-shift", str(args.max_shift), "--workers", "2", "--quiet",
        ]  # fmt: skip
        cli, stages, ashlar = [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):  # lazystitch's CLI and ASHLAR alternating
                wall, _, out = run_measured(
                    [sys.executable, "-m", "lazystitch", "register", *common,
                     "--out", str(Path(tmp) / "p.csv"), "--overwrite", "--json"]
                )  # fmt: skip
                summary = json.loads(out.strip().splitlines()[-1])
                cli.append(wall)
                stages.append({"start-up": wall - summary["seconds"], **summary["stages"]})
                if args.ashlar_python:
                    last = r == args.repeats - 1
                    mosaic_npy = str(Path(tmp) / "ashlar.npy") if args.psnr and last else ""
                    ashlar.append(_run_ashlar(args, folder, mosaic_npy))
            t0 = time.perf_counter()
            _lazystitch("stitch", *common, "--register", "--out", str(Path(tmp) / "m.h5"))
            stitch_s = time.perf_counter() - t0
            ls_psnr = _lazystitch_psnr(Path(tmp) / "m.h5", s) if args.psnr else float("nan")
            a_psnr = float("nan")
            if ashlar and args.psnr:
                a_psnr = psnr(
                    np.load(str(Path(tmp) / "ashlar.npy")), ashlar[-1][0], (0, 0), s, _placed(s)
                )
        where = {k: np.median([st.get(k, 0.0) for st in stages]) for k in stages[0]}
        lines.append(
            f"| {n}x{n} | lazystitch register (CLI, --workers 2) | same | {_runs(cli)} | "
            "process start, imports and cluster start included; median per stage: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in where.items()) + " |"
        )  # fmt: skip
        lines.append(
            f"| {n}x{n} | lazystitch stitch --register (CLI, --workers 2) | mosaic PSNR "
            f"{ls_psnr:.2f} dB | {stitch_s:.1f} s | registration, linear blend and HDF5 write |"
        )
        print(*lines[-2:], sep="\n", flush=True)
        if not ashlar:
            continue
        e = position_errors(ashlar[-1][0], truth, _placed(s))
        run_s = [a[1] for a in ashlar]
        lines.append(
            f"| {n}x{n} | ASHLAR {_ashlar_version(args.ashlar_python)} | {stats(e)} | "
            f"{_runs(run_s)} | EdgeAligner.run(); with its imports {_runs([a[2] for a in ashlar])} |"
        )
        lines.append(
            f"| {n}x{n} | ASHLAR Mosaic.assemble_channel | mosaic PSNR {a_psnr:.2f} dB | | "
            "its default linear blend |"
        )
        ratios = [c / a for c, a in zip(cli, run_s, strict=True)]
        lines.append(
            f"| {n}x{n} | **lazystitch register (CLI) / ASHLAR EdgeAligner.run()** | | "
            f"**{', '.join(f'{r:.2f}×' for r in ratios)}** | each CLI run against the ASHLAR run "
            f"after it; in-process lazystitch {ls_s / np.median(run_s):.2f}× |"
        )
        print(*lines[-3:], sep="\n", flush=True)
    source = f"cut from {args.image}" if args.image else "synthetic specimen"
    append_markdown(
        args.markdown,
        f"Registration, {args.tile}² uint16 tiles ({source}), 10 % overlap, "
        f"±{args.jitter:g} px jitter, noise, vignetting, one empty tile",
        "\n".join(lines),
        redact={"--ashlar-python": "/path/to/ashlar-venv/bin/python"},
    )


def _runs(seconds: list[float]) -> str:
    """Median and every run: ``4.1 s (4.0, 4.1, 4.6)``."""
    each = ", ".join(f"{v:.1f}" for v in seconds)
    return f"{np.median(seconds):.1f} s ({each})" if len(seconds) > 1 else f"{seconds[0]:.1f} s"


def _run_ashlar(
    args: argparse.Namespace, folder: Path, mosaic_npy: str
) -> tuple[dict, float, float]:
    """ASHLAR's positions by (row, col), EdgeAligner.run()'s seconds, and with its imports."""
    proc = subprocess.run(
        [args.ashlar_python, "-c", ASHLAR, str(folder), "tile_r{row:03}_c{col:03}.tif", "0.1",
         str(args.max_shift), mosaic_npy],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"ASHLAR failed: {proc.stderr.strip()[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # ASHLAR's nominal grid starts at 0; truth starts at the padding: the error's mean removes it
    positions = {tuple(rc): tuple(p) for rc, p in zip(out["rc"], out["positions"], strict=True)}
    return positions, out["run_s"], out["process_s"]


def _lazystitch(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "lazystitch", *args], check=True)


def _placed(s) -> list:
    return [k for k in s.true_positions if k not in s.empty]


def _lazystitch_psnr(path: Path, s) -> float:
    import h5py

    with h5py.File(path) as f:
        ds = f["mosaic"]
        keys = [tuple(int(v) for v in k) for k in ds.attrs["tile_grid"]]
        positions = dict(zip(keys, map(tuple, ds.attrs["tile_positions_input"]), strict=True))
        return psnr(ds[...], positions, ds.attrs["origin_yx"], s, _placed(s))


def _ashlar_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import ashlar; print(ashlar.__version__)"], capture_output=True, text=True
    )
    return out.stdout.strip()


if __name__ == "__main__":
    main()
