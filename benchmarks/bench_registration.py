"""Registration accuracy and time: lazystitch vs ASHLAR, side by side in one run.

Synthetic sets of N x N tiles of 1024^2 uint16 (10 % overlap, +-15 px sub-pixel stage jitter,
Poisson + Gaussian noise, vignetting, one empty tile), made by
``lazystitch.testing.make_registration_tiles`` and cached in --data. For each set:

* lazystitch, in-process (``lazystitch.registration.register`` on the threaded scheduler), and
  the CLI ``lazystitch register`` (a LocalCluster with 2 workers, start-up included);
* ASHLAR (``ashlar.reg.EdgeAligner`` with a ``FilePatternReader``), run by the Python given in
  --ashlar-python (a separate venv: ASHLAR is a benchmark-only extra, never a dependency).

Errors are |position - truth| in px after removing the mean offset, over all tiles except the
empty one (which no method can place from its content).

    python benchmarks/bench_registration.py --grids 4 8 --ashlar-python /path/to/venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

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


def errors(pos: dict, truth: dict, skip: set) -> np.ndarray:
    keys = [k for k in truth if k not in skip and k in pos]
    d = np.array([pos[k] for k in keys]) - np.array([truth[k] for k in keys])
    return np.hypot(*(d - d.mean(axis=0)).T)


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
    ap.add_argument("--ashlar-python", help="python of a venv with `pip install ashlar`")
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "_data")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--no-psnr", dest="psnr", action="store_false", help="skip the mosaics' PSNR")
    args = ap.parse_args()

    from lazystitch.io import open_tiles_pattern
    from lazystitch.layout import grid_layout
    from lazystitch.registration import register
    from lazystitch.testing import make_registration_tiles

    lines = [
        "| grid | method | median / p95 / max error (px) | wall time | notes |",
        "|---|---|---|---|---|",
    ]
    for n in args.grids:
        folder = args.data / f"reg{n}x{n}_{args.tile}"
        s = make_registration_tiles(
            folder,
            grid=(n, n),
            tile_yx=(args.tile, args.tile),
            overlap=0.1,
            jitter=args.jitter,
            empty=[(1, 2)],
            seed=3,
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
        e = errors(pos, truth, set(s.empty))
        labels = reg.labels
        lines.append(
            f"| {n}x{n} | lazystitch (in-process) | {stats(e)} | {ls_s:.1f} s | "
            f"{sum(v == 'registered' for v in labels.values())} registered, empty tile: {labels[(1, 2)]} |"
        )
        print(lines[-1], flush=True)
        # lazystitch CLI (LocalCluster start included): register alone, then stitch --register
        common = [
            "--tiles",
            s.pattern,
            "--grid",
            f"{n}x{n}",
            "--overlap",
            f"{s.overlap_px[0]},{s.overlap_px[1]}",
            "--max-shift",
            str(args.max_shift),
            "--workers",
            "2",
            "--quiet",
        ]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            _lazystitch("register", *common, "--out", str(Path(tmp) / "p.csv"))
            cli_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            _lazystitch("stitch", *common, "--register", "--out", str(Path(tmp) / "m.h5"))
            stitch_s = time.perf_counter() - t0
            ls_psnr = _lazystitch_psnr(Path(tmp) / "m.h5", s) if args.psnr else float("nan")
        lines.append(
            f"| {n}x{n} | lazystitch register (CLI, 2 workers) | same | {cli_s:.1f} s | "
            "process start, imports and cluster start included |"
        )
        lines.append(
            f"| {n}x{n} | lazystitch stitch --register (CLI, 2 workers) | mosaic PSNR "
            f"{ls_psnr:.2f} dB | {stitch_s:.1f} s | registration, linear blend and HDF5 write |"
        )
        print(*lines[-2:], sep="\n", flush=True)
        if args.ashlar_python:
            with tempfile.TemporaryDirectory() as tmp:
                mosaic_npy = str(Path(tmp) / "ashlar.npy") if args.psnr else ""
                proc = subprocess.run(
                    [
                        args.ashlar_python,
                        "-c",
                        ASHLAR,
                        str(folder),
                        "tile_r{row:03}_c{col:03}.tif",
                        "0.1",
                        str(args.max_shift),
                        mosaic_npy,
                    ],
                    capture_output=True,
                    text=True,
                )
                if proc.returncode != 0:
                    lines.append(
                        f"| {n}x{n} | ASHLAR | failed | | {proc.stderr.strip().splitlines()[-1][:80]} |"
                    )
                    print(lines[-1], flush=True)
                    continue
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                # ASHLAR's nominal grid starts at 0; truth starts at the padding: the mean removes it
                apos = {
                    tuple(rc): tuple(p) for rc, p in zip(out["rc"], out["positions"], strict=True)
                }
                e = errors(apos, truth, set(s.empty))
                a_psnr = float("nan")
                if args.psnr:
                    a_psnr = psnr(np.load(mosaic_npy), apos, (0, 0), s, _placed(s))
            lines.append(
                f"| {n}x{n} | ASHLAR {_ashlar_version(args.ashlar_python)} | {stats(e)} | "
                f"{out['run_s']:.1f} s | EdgeAligner.run(); {out['process_s']:.1f} s with imports |"
            )
            lines.append(
                f"| {n}x{n} | ASHLAR Mosaic.assemble_channel | mosaic PSNR {a_psnr:.2f} dB | | "
                "its default linear blend |"
            )
            lines[-5] = lines[-5].rstrip(" |") + f"; **{ls_s / out['run_s']:.2f}× ASHLAR's time** |"
            print(*lines[-2:], sep="\n", flush=True)
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        cmd = " ".join(
            ["python", os.path.relpath(sys.argv[0]), *[a for a in sys.argv[1:] if "venv" not in a]]
        )
        with args.markdown.open("a") as fh:
            fh.write(
                f"\n### Registration, {args.tile}² uint16 tiles, 10 % overlap, ±{args.jitter:g} px jitter, "
                f"noise, vignetting, one empty tile ({time.strftime('%Y-%m-%d')})\n\n`{cmd}`\n\n{table}\n"
            )


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
