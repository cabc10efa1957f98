"""Registration accuracy on tiles cut from real images at hidden sub-pixel offsets.

Not the generator the code was developed on: each set cuts a grid of 640-800 px uint16 tiles
(10 % overlap, +-10-20 px of uniform sub-pixel stage jitter, Poisson noise of 1,000 photons at
the brightest pixel plus read noise, 30 % vignetting) out of one real image, repeated
periodically where the grid is larger than it (``lazystitch.testing.make_registration_tiles``
with ``image=``). The images: scikit-image's retina (fundus photograph, smooth vessels on a
black surround) and Hubble deep field (sparse galaxies on noise), NIST MIST's phase-contrast
mosaic (cells on flat background), a backscattered-electron micrograph (stitch2d), a Zeiss
confocal section (multiview-stitcher's CZI; half of it black: those links must fail) and a
starry-night painting (starrynight strip). The oracle is the cut positions themselves.

For each set: ``lazystitch.registration.register`` in-process (default search radius, the
threaded scheduler), errors |position - truth| after removing the mean offset, over the
tiles registered on their overlaps.

    python benchmarks/bench_accuracy.py --markdown benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from _common import append_markdown, position_errors

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def _gray(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[..., :3].mean(axis=-1) if a.ndim == 3 else a


def _first(folder: Path) -> np.ndarray:
    return _gray(iio.imread(sorted(folder.glob("*"))[0]))


def sources() -> dict:
    import skimage.data

    tests = ROOT / "tests" / "data"
    return {
        "retina": lambda: _gray(skimage.data.retina()),
        "hubble": lambda: _gray(skimage.data.hubble_deep_field()),
        # MIST's own fused mosaic, without its black margins
        "mist": lambda: _gray(
            iio.imread(SHARED / "mist_phase_5x5" / "mist_output" / "img-stitched-1.tif")
        )[25:865, 25:1160],
        "bse": lambda: _first(tests / "stitch2d_bse_3x2" / "tiles"),
        "czi": lambda: _first(tests / "mvs_mosaic_czi_2tiles" / "tiles"),
        "starrynight": lambda: _first(SHARED / "starrynight_strip_1x10" / "tiles"),
    }


# name, tile px, jitter px, seed, grid
SETS = [
    ("retina", 640, 15, 1, (4, 4)),
    ("hubble", 700, 20, 2, (4, 4)),
    ("mist", 800, 10, 3, (3, 3)),
    ("bse", 720, 12, 4, (4, 4)),
    ("czi", 640, 18, 5, (3, 4)),
    ("starrynight", 760, 15, 6, (3, 3)),
]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sets", nargs="+", default=[s[0] for s in SETS])
    ap.add_argument("--data", type=Path, help="where to cache the tiles (default: a temp dir)")
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()

    import dask

    from lazystitch.io import open_tiles_pattern
    from lazystitch.layout import grid_layout
    from lazystitch.registration import register
    from lazystitch.testing import make_registration_tiles

    root = args.data or Path(tempfile.mkdtemp(prefix="lazystitch-accuracy-"))
    images = sources()
    lines = [
        "| set (source, grid, tile, jitter) | registered | median / p95 / max error (px) | time |",
        "|---|---|---|---|",
    ]
    for name, tile, jitter, seed, grid in SETS:
        if name not in args.sets:
            continue
        try:
            image = images[name]()
        except FileNotFoundError as exc:
            print(f"{name}: skipped, {exc}", file=sys.stderr)
            continue
        s = make_registration_tiles(
            root / f"{name}_{tile}",
            grid=grid,
            tile_yx=(tile, tile),
            overlap=0.1,
            jitter=jitter,
            photons=1000,
            read_noise=3,
            seed=seed,
            image=image,
        )
        tiles = open_tiles_pattern(s.pattern, s.true_positions)
        t0 = time.perf_counter()
        with dask.config.set(scheduler="threads"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the report counts the unlinked tiles
            reg = register(
                tiles, grid_layout(*grid, tiles.tile_yx, s.overlap_px), allow_unlinked=True
            )
        wall = time.perf_counter() - t0
        positions = dict(zip(reg.layout.keys, reg.layout.positions, strict=True))
        registered = [k for k, label in reg.labels.items() if label == "registered"]
        e = position_errors(positions, s.true_positions, registered)
        row = (
            f"| {name}, {grid[0]}x{grid[1]}, {tile} px, +-{jitter} px | {len(registered)} of {len(positions)} "
            f"| {np.median(e):.3f} / {np.percentile(e, 95):.3f} / {e.max():.3f} | {wall:.1f} s |"
        )
        print(row, file=sys.stderr, flush=True)
        lines.append(row)
    append_markdown(
        args.markdown, "Registration accuracy on tiles cut from real images", "\n".join(lines)
    )


if __name__ == "__main__":
    main()
