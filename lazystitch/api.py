"""The public pipeline: stage functions for notebooks and the one-call :func:`stitch`."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from lazystitch._version import __version__
from lazystitch.config import StitchConfig, load_config
from lazystitch.fusion import FusionPlan, fuse, plan_fusion
from lazystitch.io import TileSet, open_tiles_pattern
from lazystitch.layout import Layout, grid_layout, positions_from_csv, read_positions_csv
from lazystitch.writers import ProgressFn, WriteResult, write_hdf5

__all__ = ["LazyMosaic", "load_layout_and_tiles", "prepare", "stitch"]

log = logging.getLogger(__name__)


def load_layout_and_tiles(config: StitchConfig) -> tuple[TileSet, Layout]:
    """Open (header-check) the tiles the config names and build their layout."""
    lay, opts = config.layout, config.tiles
    if lay.positions is not None:
        keys, _ = read_positions_csv(lay.positions)
        grid = None
    else:
        assert lay.grid is not None
        grid = lay.grid
        keys = [(r, c) for r in range(grid[0]) for c in range(grid[1])]
    tiles = open_tiles_pattern(opts.pattern, keys, start=opts.start, order=opts.order, grid=grid)
    if grid is None:
        layout = positions_from_csv(lay.positions, tiles.tile_yx)
    else:
        layout = grid_layout(*grid, tiles.tile_yx, lay.overlap)
    return tiles, layout


@dataclass(frozen=True)
class LazyMosaic:
    """Everything up to the write: tiles, layout, fusion plan and the lazy mosaic."""

    config: StitchConfig
    tiles: TileSet
    layout: Layout
    plan: FusionPlan
    mosaic: da.Array

    def attrs(self) -> dict[str, Any]:
        """Metadata stored on the output dataset."""
        return {
            "lazystitch_version": __version__,
            "blend": self.config.fusion.blend.value,
            "layout": json.dumps(self.layout.description),
            "tile_grid": np.array(self.layout.keys, dtype=np.int64),
            "tile_positions": self.layout.pixel_positions,
            "tile_positions_input": self.layout.positions,
            "tile_files": np.array(
                [str(self.tiles.headers[k].path) for k in self.layout.keys], dtype=object
            ),
            "tile_shape": np.array(self.tiles.shape, dtype=np.int64),
            "origin_yx": np.array(self.layout.origin, dtype=np.int64),
            "axes": "".join(["?"] * (self.mosaic.ndim - 2)) + "YX",
            "config": self.config.model_dump_json(),
        }

    def fingerprint(self) -> str:
        """Identifies inputs and fusion settings, for ``resume``."""
        h = hashlib.sha256()
        h.update(self.tiles.fingerprint().encode())
        h.update(np.ascontiguousarray(self.layout.pixel_positions).tobytes())
        h.update(repr(self.layout.keys).encode())
        h.update(self.config.fusion.blend.value.encode())
        return h.hexdigest()


def prepare(config: StitchConfig | dict | str | Path) -> LazyMosaic:
    """Check the inputs and build the lazy mosaic; reads tile headers only.

    Parameters
    ----------
    config : StitchConfig, dict or path to a YAML file

    Returns
    -------
    LazyMosaic
    """
    config = _as_config(config)
    tiles, layout = load_layout_and_tiles(config)
    plan = plan_fusion(layout)
    mosaic = fuse(tiles, layout, blend=config.fusion.blend, plan=plan)
    return LazyMosaic(config, tiles, layout, plan, mosaic)


def _as_config(config: StitchConfig | dict | str | Path) -> StitchConfig:
    if isinstance(config, StitchConfig):
        return config
    if isinstance(config, dict):
        return load_config(None, config)
    return load_config(config)


def stitch(
    config: StitchConfig | dict | str | Path,
    *,
    progress: ProgressFn | None = None,
    on_client: Any = None,
) -> WriteResult:
    """Stitch the tiles a config names into its HDF5 output, start to finish.

    Uses the active ``distributed`` Client if there is one; otherwise starts the cluster the
    config's ``cluster`` section describes (a LocalCluster by default) and closes it after.

    Parameters
    ----------
    config : StitchConfig, dict or path to a YAML file
    progress : callable(done, total), optional
        Called as chunks are written.
    on_client : callable(client), optional
        Called with the Client once it is up (the CLI prints the dashboard link).

    Returns
    -------
    WriteResult
    """
    config = _as_config(config)
    job = prepare(config)  # inputs are checked before any cluster starts
    out = config.output

    def run() -> WriteResult:
        return write_hdf5(
            job.mosaic,
            out.path,
            dataset=out.dataset,
            chunks=out.chunks,
            codec=out.compression,
            attrs=job.attrs(),
            fingerprint=job.fingerprint(),
            overwrite=out.overwrite,
            resume=out.resume,
            progress=progress,
        )

    try:
        from distributed import get_client

        client = get_client()
    except ValueError:
        client = None
    if client is not None:
        if on_client:
            on_client(client)
        return run()
    from lazystitch.cluster import cluster_client

    cl = config.cluster
    with cluster_client(
        scheduler=cl.scheduler, workers=cl.workers, memory_limit=cl.memory_limit
    ) as client:
        if on_client:
            on_client(client)
        return run()
