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
    path, pattern, overlap, max_shift = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    reader = filepattern.FilePatternReader(path, pattern, overlap, pixel_size=1.0)
    t1 = time.perf_counter()
    aligner = reg.EdgeAligner(reader, channel=0, max_shift=max_shift, verbose=False, do_make_thumbnail=False)
    aligner.run()
    t2 = time.perf_counter()
    rc = [reader.metadata.tile_rc(i) for i in range(reader.metadata.num_images)]
    print(json.dumps({"rc": [list(map(int, x)) for x in rc], "positions": aligner.positions.tolist(),
                      "run_s": t2 - t1, "process_s": t2 - t0}))
    """
)


def errors(pos: dict, truth: dict, skip: set) -> np.ndarray:
    keys = [k for k in truth if k not in skip and k in pos]
    d = np.array([pos[k] for k in keys]) - np.array([truth[k] for k in keys])
    return np.hypot(*(d - d.mean(axis=0)).T)


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
        # lazystitch CLI (LocalCluster start included)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "lazystitch",
                    "register",
                    "--tiles",
                    s.pattern,
                    "--grid",
                    f"{n}x{n}",
                    "--overlap",
                    f"{s.overlap_px[0]},{s.overlap_px[1]}",
                    "--max-shift",
                    str(args.max_shift),
                    "--out",
                    str(Path(tmp) / "p.csv"),
                    "--workers",
                    "2",
                    "--quiet",
                ],
                check=True,
            )
            cli_s = time.perf_counter() - t0
        lines.append(
            f"| {n}x{n} | lazystitch register (CLI, 2 workers) | same | {cli_s:.1f} s | process start, imports and cluster start included |"
        )
        print(lines[-1], flush=True)
        if args.ashlar_python:
            proc = subprocess.run(
                [
                    args.ashlar_python,
                    "-c",
                    ASHLAR,
                    str(folder),
                    "tile_r{row:03}_c{col:03}.tif",
                    "0.1",
                    str(args.max_shift),
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                lines.append(
                    f"| {n}x{n} | ASHLAR | failed | | {proc.stderr.strip().splitlines()[-1][:80]} |"
                )
            else:
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                # ASHLAR's nominal grid starts at 0; truth starts at the padding: the mean removes it
                apos = {
                    tuple(rc): tuple(p) for rc, p in zip(out["rc"], out["positions"], strict=True)
                }
                e = errors(apos, truth, set(s.empty))
                lines.append(
                    f"| {n}x{n} | ASHLAR {_ashlar_version(args.ashlar_python)} | {stats(e)} | "
                    f"{out['run_s']:.1f} s | EdgeAligner.run(); {out['process_s']:.1f} s with imports |"
                )
                lines[-3] = (
                    lines[-3].rstrip(" |") + f"; **{ls_s / out['run_s']:.2f}× ASHLAR's time** |"
                )
            print(lines[-1], flush=True)
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


def _ashlar_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import ashlar; print(ashlar.__version__)"], capture_output=True, text=True
    )
    return out.stdout.strip()


if __name__ == "__main__":
    main()
