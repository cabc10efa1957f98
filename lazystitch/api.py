"""The public pipeline: stage functions for notebooks and the one-call :func:`stitch`."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dask.array as da
import numpy as np

from lazystitch._version import __version__
from lazystitch.cluster import JOBQUEUE_CLASSES, active_client
from lazystitch.config import StitchConfig, load_config
from lazystitch.errors import ConfigError
from lazystitch.fusion import FusionPlan, fuse, plan_fusion
from lazystitch.io import TileSet, open_tiles_pattern
from lazystitch.layout import Layout, grid_layout, positions_layout, read_positions_csv
from lazystitch.registration import Registration, register
from lazystitch.writers import ProgressFn, WriteMode, WriteResult, write_hdf5

__all__ = ["LazyMosaic", "load_layout_and_tiles", "prepare", "register_tiles", "stitch"]

T = TypeVar("T")

log = logging.getLogger(__name__)


def load_layout_and_tiles(config: StitchConfig) -> tuple[TileSet, Layout]:
    """Open (header-check) the tiles the config names and build their layout."""
    lay, opts = config.layout, config.tiles
    if lay.positions is not None:
        keys, positions = read_positions_csv(lay.positions)
        grid = None
    else:
        assert lay.grid is not None
        grid = lay.grid
        keys = [(r, c) for r in range(grid[0]) for c in range(grid[1])]
    tiles = open_tiles_pattern(opts.pattern, keys, start=opts.start, order=opts.order, grid=grid)
    if grid is None:
        layout = positions_layout(keys, positions, tiles.tile_yx, lay.positions)
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
    registration: Registration | None = None

    def attrs(self) -> dict[str, Any]:
        """Metadata stored on the output dataset."""
        attrs = {
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
            "config": self.config.model_dump_json(),
        }
        if self.registration is not None:
            report = self.registration.report()
            attrs["tile_labels"] = np.array(self.registration.solution.labels, dtype=object)
            attrs["registration_summary"] = json.dumps(
                {k: report[k] for k in ("summary", "threshold", "max_shift", "stage_model")}
            )
        return attrs

    def fingerprint(self) -> str:
        """Identifies inputs and fusion settings, for ``resume``."""
        h = hashlib.sha256()
        h.update(self.tiles.fingerprint().encode())
        h.update(np.ascontiguousarray(self.layout.pixel_positions).tobytes())
        h.update(np.ascontiguousarray(self.layout.fractions).tobytes())
        h.update(repr(self.layout.keys).encode())
        h.update(self.config.fusion.blend.value.encode())
        return h.hexdigest()


def _as_config(config: StitchConfig | dict | str | Path) -> StitchConfig:
    if isinstance(config, StitchConfig):
        return config
    if isinstance(config, dict):
        return load_config(None, config)
    return load_config(config)


def write_mode(config: StitchConfig, started: bool) -> WriteMode:
    """The write mode a run uses: ``auto`` is ``shards`` when lazystitch started batch-job
    workers (they may sit on many machines: no chunk bytes should pass through this process),
    else ``single`` (measured: on one machine the single writer is as fast; see
    benchmarks/RESULTS.md)."""
    mode = config.output.write_mode if config.output else "auto"
    if mode != "auto":
        return WriteMode(mode)
    batch = started and config.cluster.kind in JOBQUEUE_CLASSES
    return WriteMode.shards if batch else WriteMode.single


def _on_cluster(config: StitchConfig, run: Callable[[], T], on_client: Any = None) -> T:
    """Run ``run()`` on the active Client, or on the cluster the config describes."""
    client = active_client()
    if client is not None:
        if on_client:
            on_client(client)
        return run()
    from lazystitch.cluster import cluster_client

    with cluster_client(**config.cluster.model_dump()) as client:
        if on_client:
            on_client(client)
        return run()


def register_tiles(
    config: StitchConfig | dict | str | Path, *, on_client: Any = None
) -> Registration:
    """Register the tiles a config names (on the active Client, or a cluster it starts).

    Writes the report to ``config.registration.report`` if set.
    """
    config = _as_config(config)
    tiles, layout = load_layout_and_tiles(config)
    return _on_cluster(config, lambda: _register(config, tiles, layout), on_client)


def _register(config: StitchConfig, tiles: TileSet, layout: Layout) -> Registration:
    """Register as ``config.registration`` says, writing the report if it names a folder."""
    opts = config.registration
    reg = register(tiles, layout, max_shift=opts.max_shift, max_residual=opts.max_residual)
    if opts.report is not None:
        reg.write_report(opts.report)
    return reg


def prepare(config: StitchConfig | dict | str | Path) -> LazyMosaic:
    """Check the inputs and build the lazy mosaic; reads tile headers only.

    With ``registration.enabled`` the tiles are registered first (that computes the overlap
    strips, on the active Client), and the mosaic uses the registered positions.

    Parameters
    ----------
    config : StitchConfig, dict or path to a YAML file

    Returns
    -------
    LazyMosaic
    """
    config = _as_config(config)
    return _build(config, *load_layout_and_tiles(config))


def _build(config: StitchConfig, tiles: TileSet, layout: Layout) -> LazyMosaic:
    registration = _register(config, tiles, layout) if config.registration.enabled else None
    if registration is not None:
        layout = registration.layout
    plan = plan_fusion(layout)
    mosaic = fuse(tiles, layout, blend=config.fusion.blend, plan=plan)
    return LazyMosaic(config, tiles, layout, plan, mosaic, registration)


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
    out = config.output
    if out is None:
        raise ConfigError("invalid configuration: output.path: required key is missing")
    tiles, layout = load_layout_and_tiles(config)  # inputs are checked before any cluster starts
    job = None if config.registration.enabled else _build(config, tiles, layout)

    started = active_client() is None  # else the run joins the caller's client

    def run() -> WriteResult:
        current = job or _build(config, tiles, layout)  # registration computes on the cluster
        return write_hdf5(
            current.mosaic,
            out.path,
            dataset=out.dataset,
            chunks=out.chunks,
            codec=out.compression,
            attrs=current.attrs(),
            fingerprint=current.fingerprint(),
            overwrite=out.overwrite,
            resume=out.resume,
            progress=progress,
            mode=write_mode(config, started),
            shard=out.shard,
        )

    return _on_cluster(config, run, on_client)
