"""The built-in demo: a synthetic tile set with known positions, stitched end to end."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lazystitch.api import stitch
from lazystitch.testing import make_tiles
from lazystitch.writers import ProgressFn, WriteResult

__all__ = ["DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    result: WriteResult
    tiles_dir: Path
    max_abs_error: int
    seconds_total: float


def run_demo(
    directory: str | Path = "lazystitch-demo",
    *,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    on_client: Any = None,
) -> DemoResult:
    """Write 4x5 jittered tiles of 512x512 uint16 to ``directory/tiles`` and stitch them.

    The demo owns ``directory``: its tiles and ``mosaic.h5`` are replaced on every run. The
    mosaic is compared with the image the tiles were cut from.
    """
    t0 = time.perf_counter()
    directory = Path(directory)
    synth = make_tiles(
        directory / "tiles", grid=(4, 5), tile_yx=(512, 512), overlap=(64, 64), jitter=12, seed=7
    )
    config = {
        "tiles": {"pattern": synth.pattern},
        "layout": {"positions": str(synth.positions_csv)},
        "fusion": {"blend": "linear"},
        "output": {"path": str(directory / "mosaic.h5"), "chunks": (512, 512), "overwrite": True},
        "cluster": {"workers": workers},
    }
    result = stitch(config, progress=progress, on_client=on_client)
    with h5py.File(result.out, "r") as f:
        mosaic = f[result.dataset][...]
    err = int(np.abs(mosaic.astype(np.int64) - synth.image.astype(np.int64)).max())
    return DemoResult(result, directory / "tiles", err, time.perf_counter() - t0)
