"""The public pipeline: stage functions for notebooks and the one-call :func:`stitch`."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from lazystitch._preview import preview_path, write_preview
from lazystitch._version import __version__
from lazystitch.cluster import JOBQUEUE_CLASSES, active_client
from lazystitch.config import StitchConfig, load_config
from lazystitch.errors import (
    ConfigError,
    LazystitchWarning,
    OutputExistsError,
    TileError,
    UnlinkedTilesError,
)
from lazystitch.io import (
    Correction,
    Profile,
    TileSet,
    discover_keys,
    estimate_flatfield,
    import_hook,
    open_tiles_pattern,
    pattern_fields,
)
from lazystitch.layout import (
    Layout,
    grid_keys,
    grid_layout,
    orient_positions,
    positions_layout,
    read_positions_csv,
)
from lazystitch.writers import (
    ChunkCodec,
    ProgressFn,
    WriteMode,
    WriteResult,
    check_chunk_count,
    check_output,
    check_output_target,
    output_format,
    plan_arrays,
    storage_chunks,
    write_hdf5,
)

if TYPE_CHECKING:  # registration (scipy's sparse solvers), fusion and dask.array load when used
    import dask.array as da

    from lazystitch.fusion import FusedGraph, FusionPlan, TileMap
    from lazystitch.registration import Registration

__all__ = ["LazyMosaic", "load_layout_and_tiles", "prepare", "register_tiles", "stitch"]

T = TypeVar("T")

log = logging.getLogger(__name__)


def load_layout_and_tiles(config: StitchConfig) -> tuple[TileSet, Layout]:
    """Open (header-check) the tiles the config names and build their layout."""
    lay, opts = config.layout, config.tiles
    grid = None
    if lay.positions == "metadata":
        keys = discover_keys(opts.pattern, start=opts.start)
    elif lay.positions is not None:
        keys, positions = read_positions_csv(lay.positions)
    else:
        assert lay.grid is not None
        grid = lay.grid
        keys = [(r, c) for r in range(grid[0]) for c in range(grid[1])]
    tiles = open_tiles_pattern(
        opts.pattern, keys, start=opts.start, order=opts.order, grid=grid, channels=opts.channels
    )
    tiles = corrected_tiles(config, tiles)
    if grid is not None:
        assert lay.overlap is not None  # the config requires it with a grid
        return tiles, grid_layout(*grid, tiles.tile_yx, lay.overlap)
    if lay.positions == "metadata":
        positions = _um_to_px(stage_positions_um(tiles), _pixel_size_yx(config, tiles, "metadata"))
        if not {"row", "col"} <= pattern_fields(opts.pattern):  # numbered: rows from places
            axes = {"swap_xy": lay.swap_xy, "flip_y": lay.flip_y, "flip_x": lay.flip_x}
            cells = grid_keys(orient_positions(positions, **axes), tiles.tile_yx)
            if cells is not None:
                tiles = tiles.with_keys(dict(zip(keys, cells, strict=True)))
                order = sorted(range(len(cells)), key=cells.__getitem__)
                keys, positions = [cells[i] for i in order], positions[order]
    elif lay.positions_unit == "um":
        size = _pixel_size_yx(config, tiles, f"the positions CSV {lay.positions}")
        positions = _um_to_px(positions, size)
    assert lay.positions is not None
    layout = positions_layout(
        keys, positions, tiles.tile_yx, lay.positions,
        swap_xy=lay.swap_xy, flip_y=lay.flip_y, flip_x=lay.flip_x,
    )  # fmt: skip
    return tiles, layout


def corrected_tiles(
    config: StitchConfig, tiles: TileSet, flatfield: Profile | None = None
) -> TileSet:
    """The tiles with the corrections ``config.tiles`` asks for applied in every read:
    the flat-field (``flatfield``, once estimated, for ``estimate``), dark-field and hook."""
    opts = config.tiles
    if isinstance(opts.flatfield, Path):
        flatfield = Profile.from_file(opts.flatfield, "flatfield")
    dark = Profile.from_file(opts.darkfield, "darkfield") if opts.darkfield else None
    hook = import_hook(opts.preprocess) if isinstance(opts.preprocess, str) else opts.preprocess
    if opts.preprocess_dtype is not None and hook is None:
        raise ConfigError(
            "invalid configuration: tiles.preprocess_dtype: is the dtype tiles.preprocess "
            "returns, but no tiles.preprocess is given"
        )
    if flatfield is None and dark is None and hook is None:
        return tiles.corrected(None)
    dtype = np.dtype(opts.preprocess_dtype or tiles.sources_dtype)
    return tiles.corrected(Correction(dtype, flatfield, dark, hook))


def flatfield_path(config: StitchConfig) -> Path | None:
    """Where ``tiles.flatfield: estimate`` saves its profile: beside the output
    (``OUT.flatfield.tif``), else in the registration report's folder, else nowhere."""
    if config.output is not None:
        return config.output.path.with_suffix(".flatfield.tif")
    if config.registration.report is not None:
        return config.registration.report / "flatfield.tif"
    return None


def _check_flatfield_path(config: StitchConfig, inputs: list[Path]) -> None:
    """Refuse, before any work, to replace an estimated profile a run did not ask to."""
    path = flatfield_path(config)
    if config.tiles.flatfield != "estimate" or path is None:
        return
    check_output_target(path, inputs=inputs, what="the estimated flat-field")
    out = config.output
    if path.exists() and not (out is not None and (out.overwrite or out.resume)):
        raise OutputExistsError(
            f"the estimated flat-field {path} exists; pass --overwrite to replace it (or "
            f"--flatfield {path} to use it)"
        )


def with_estimated_flatfield(config: StitchConfig, tiles: TileSet, layout: Layout) -> TileSet:
    """For ``tiles.flatfield: estimate``: the tiles corrected by the profile estimated from
    their overlaps (as ``layout`` places them) on the active Client, saved at
    :func:`flatfield_path` (a resumed run reuses the one it saved)."""
    if config.tiles.flatfield != "estimate":
        return tiles
    path = flatfield_path(config)
    resume = config.output is not None and config.output.resume
    if path is not None and resume and path.is_file():
        return corrected_tiles(config, tiles, Profile.from_file(path, "flatfield"))
    profile = estimate_flatfield(tiles, layout)
    if path is None:
        log.warning("the estimated flat-field is not saved (no output or report folder)")
        return corrected_tiles(config, tiles, Profile.from_array(profile))
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    tifffile.imwrite(part, profile, metadata={"axes": "CYX" if profile.ndim == 3 else "YX"})
    part.replace(path)
    return corrected_tiles(config, tiles, Profile.from_file(path, "flatfield"))


def register_channel(config: StitchConfig, tiles: TileSet) -> int | None:
    """The channel index registration reads (``registration.channel``; default the first),
    or None for tiles without a channel axis.

    Raises
    ------
    ConfigError
        A channel that the tiles do not have, named with the ones they have.
    """
    want = config.registration.channel
    names = tiles.channels
    if names is None:
        if want is not None:
            raise ConfigError(
                f"invalid configuration: registration.channel: {want!r}, but the tiles "
                f"(axes {tiles.axes!r}) have no channel axis"
            )
        return None
    if want is None:
        return 0
    if str(want) in names:
        return names.index(str(want))
    if isinstance(want, int) or str(want).lstrip("-").isdigit():
        index = int(want)
        if 0 <= index < len(names):
            return index
    raise ConfigError(
        f"invalid configuration: registration.channel: the tiles have no channel {want!r}; "
        f"they have {len(names)}: " + ", ".join(f"{i} {n!r}" for i, n in enumerate(names))
    )


def _um_to_px(um: np.ndarray, size_yx: np.ndarray) -> np.ndarray:
    """Stage positions in µm as pixels from the first corner: only where tiles sit relative
    to each other matters, and a stage origin that is no whole number of pixels away would
    otherwise move every tile by the same fraction of a pixel."""
    return (um - um.min(axis=0)) / size_yx


def stage_positions_um(tiles: TileSet) -> np.ndarray:
    """The tiles' stage (y, x) in µm from their metadata, in the tiles' order.

    Raises
    ------
    TileError
        Naming the first tile whose file gives no stage position in physical units.
    """
    missing = [s for s in tiles.sources.values() if s.position is None]
    if missing:
        raise TileError(
            f"tile {missing[0].name} has no stage position in physical units in its metadata "
            "(OME Plane PositionX/PositionY or StageLabel, with a length unit; OME's default "
            "'reference frame' is not one)"
            + (f", nor do {len(missing) - 1} more tile(s)" if len(missing) > 1 else "")
            + "; give the positions as a CSV (--positions FILE.csv) instead"
        )
    um = np.array([s.position[-2:] for s in tiles.sources.values() if s.position is not None])
    if len(um) > 1 and np.all(um == um[0]):
        raise TileError(
            f"all {len(um)} tiles record one stage position {tuple(um[0].tolist())} µm in "
            "their metadata, so it cannot place them; give the positions as a CSV "
            "(--positions FILE.csv) or a grid (--grid, --overlap)"
        )
    return um


def _pixel_size(config: StitchConfig, tiles: TileSet) -> tuple[float, float] | None:
    """The Y, X pixel size (µm): tiles.pixel_size, else the one every tile records."""
    if config.tiles.pixel_size is not None:
        return config.tiles.pixel_size, config.tiles.pixel_size
    return tiles.pixel_size_yx


def _output_pixel_size(config: StitchConfig, tiles: TileSet) -> float | None:
    """The pixel size recorded in the output (which takes one value for Y and X)."""
    size = _pixel_size(config, tiles)
    return size[0] if size is not None and math.isclose(*size, rel_tol=1e-9) else None


def _pixel_size_yx(config: StitchConfig, tiles: TileSet, what: str) -> np.ndarray:
    """The Y, X pixel size that turns ``what``'s µm positions into pixels."""
    size = _pixel_size(config, tiles)
    if size is None:
        raise ConfigError(
            f"invalid configuration: tiles.pixel_size: {what} gives positions in µm, but the "
            "tiles do not all record one Y, X pixel size; give --pixel-size UM"
        )
    return np.array(size)


@dataclass(frozen=True)
class LazyMosaic:
    """Everything up to the write: tiles, layout, fusion plan and the lazy mosaic."""

    config: StitchConfig
    tiles: TileSet
    layout: Layout
    plan: FusionPlan
    fused: FusedGraph
    registration: Registration | None = None

    @functools.cached_property
    def mosaic(self) -> da.Array:
        """The lazy mosaic: a dask array over :attr:`fused`'s graph (one task per block)."""
        return self.fused.to_array()

    @functools.cached_property
    def tile_map(self) -> TileMap:
        """Which tile each pixel of the mosaic came from (label n: ``layout.keys[n - 1]``;
        0: no tile), cut on the mosaic's blocks; lazy (see
        :func:`lazystitch.fusion.tile_map_graph`). ``tile_map.labels.to_array()`` is a dask
        array."""
        from lazystitch.fusion import tile_map_graph

        block = (self.fused.chunks[-2][0], self.fused.chunks[-1][0])
        return tile_map_graph(
            self.plan, blend=self.config.fusion.blend, lead=self.fused.ndim - 2, chunks=block
        )

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
                [self.tiles.sources[k].name for k in self.layout.keys], dtype=object
            ),
            "tile_shape": np.array(self.tiles.shape, dtype=np.int64),
            "origin_yx": np.array(self.layout.origin, dtype=np.int64),
            "config": self.config.model_dump_json(),
        }
        if self.tiles.correction is not None:
            attrs["tile_correction"] = json.dumps(self.tiles.correction.describe())
        if self.tiles.channels is not None:
            attrs["channels"] = np.array(self.tiles.channels, dtype=object)
            attrs["axes"] = "".join(a for a in self.tiles.axes if a not in "yx") + "yx"
        if self.registration is not None:
            report = self.registration.report()
            attrs["tile_labels"] = np.array(self.registration.solution.labels, dtype=object)
            attrs["registration_summary"] = json.dumps(
                {k: report[k] for k in ("summary", "threshold", "max_shift", "stage_model")}
            )
        return attrs

    def fingerprint(self) -> dict[str, Any]:
        """Identifies the inputs and fusion settings, one entry per component, so that a
        refused ``resume`` names what changed: each tile file (size and modification time),
        the tiles' (row, col), their positions, the blend."""

        def digest(*arrays: Any) -> str:
            h = hashlib.sha256()
            for a in arrays:
                h.update(np.ascontiguousarray(a).tobytes())
            return h.hexdigest()[:16]

        return {
            "tiles": self.tiles.manifest(),
            "tile grid": digest(np.asarray(self.layout.keys, dtype=np.int64)),
            "positions": digest(self.layout.pixel_positions, self.layout.fractions),
            "blend": self.config.fusion.blend.value,
            "correction": json.dumps(
                self.tiles.correction.describe() if self.tiles.correction else None
            ),
        }


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
    if (
        config.output
        and output_format(config.output.path, config.output.format).container == "zarr"
    ):
        return WriteMode.single  # Zarr chunks (or shards) are files of their own
    batch = started and config.cluster.kind in JOBQUEUE_CLASSES
    return WriteMode.shards if batch else WriteMode.single


DASHBOARD_AUTO_BYTES = 4 << 30
"""``cluster.dashboard: auto`` serves the dashboard for jobs of at least this many bytes."""


def _on_cluster(
    config: StitchConfig,
    run: Callable[[], T],
    on_client: Any = None,
    notify: Callable[[str], None] | None = None,
    job_bytes: int | None = None,
) -> T:
    """Run ``run()`` on the active Client, or on the cluster the config describes (with
    ``cluster.dashboard: auto``, a dashboard if ``job_bytes`` is unknown or large)."""
    client = active_client()
    if client is not None:
        if on_client:
            on_client(client)
        return run()
    from lazystitch.cluster import cluster_client

    opts = config.cluster.model_dump()
    auto = job_bytes is None or job_bytes >= DASHBOARD_AUTO_BYTES
    opts["dashboard"] = {"on": True, "off": False}.get(opts["dashboard"], auto)
    with cluster_client(**opts, notify=notify) as client:
        if on_client:
            on_client(client)
        return run()


def _check_registration(config: StitchConfig, tiles: TileSet) -> None:
    """The registration settings that can be checked before any work."""
    opts = config.registration
    from lazystitch.registration import check_max_shift

    check_max_shift(opts.max_shift, tiles.tile_yx)
    register_channel(config, tiles)
    if opts.report is not None and opts.report.exists() and not opts.report.is_dir():
        raise ConfigError(
            f"registration.report {opts.report} is a file; the report needs a folder "
            "(it writes registration.json and registration.png into it)"
        )


def register_tiles(
    config: StitchConfig | dict | str | Path,
    *,
    on_client: Any = None,
    notify: Callable[[str], None] | None = None,
) -> Registration:
    """Register the tiles a config names (on the active Client, or a cluster it starts).

    Writes the report to ``config.registration.report`` if set. ``notify`` gets a line of
    text while a cluster is slow to answer.
    """
    import lazystitch.registration  # noqa: F401  (imports are start-up, not a stage)

    config = _as_config(config)
    t0 = time.perf_counter()
    tiles, layout = load_layout_and_tiles(config)
    _check_registration(config, tiles)
    headers = time.perf_counter() - t0
    tile_bytes = len(tiles.keys) * math.prod(tiles.shape) * tiles.dtype.itemsize

    _check_flatfield_path(config, tiles.paths)

    def run() -> Registration:
        before = {"headers": headers, "cluster_start": time.perf_counter() - t1}
        return _register(config, with_estimated_flatfield(config, tiles, layout), layout, before)

    t1 = time.perf_counter()
    return _on_cluster(config, run, on_client, notify, tile_bytes)


def _register(
    config: StitchConfig, tiles: TileSet, layout: Layout, seconds: dict[str, float]
) -> Registration:
    """Register as ``config.registration`` says, writing the report if it names a folder;
    ``seconds``: the stages before it (see ``Registration.seconds``)."""
    opts = config.registration
    from lazystitch.registration import register

    channel = register_channel(config, tiles)
    seen = tiles if channel is None else tiles.one_channel(channel)
    try:
        reg = register(
            seen, layout, max_shift=opts.max_shift, max_residual=opts.max_residual,
            allow_unlinked=opts.allow_unlinked,
        )  # fmt: skip
        reg = dataclasses.replace(reg, seconds={**seconds, **reg.seconds})
    except UnlinkedTilesError as exc:  # the report says why: write it before stopping
        if opts.report is not None and exc.registration is not None:
            exc.registration.write_report(opts.report)  # type: ignore[attr-defined]
        raise
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
    tiles = with_estimated_flatfield(config, tiles, layout)  # on the cluster, when asked for
    registration = _register(config, tiles, layout, {}) if config.registration.enabled else None
    if registration is not None:
        layout = registration.layout
    from lazystitch.fusion import fused_graph, plan_fusion

    plan = plan_fusion(layout)
    # blocks of 2 x 2 storage chunks: the writer stores each chunk straight from its block,
    # and makes pyramid level 1's chunk under a block from the block alone
    out = config.output
    chunks = storage_chunks((*tiles.shape[:-2], *plan.mosaic_yx), out.chunks if out else None)
    block = (2 * chunks[-2], 2 * chunks[-1])
    fused = fused_graph(tiles, layout, blend=config.fusion.blend, plan=plan, chunks=block)
    return LazyMosaic(config, tiles, layout, plan, fused, registration)


def _check_preview_path(config: StitchConfig, inputs: list[Path]) -> Path | None:
    """Where the run's preview picture goes (None: no preview), refused before any work if
    it is an input, or a file an earlier run left that is not to be replaced."""
    out = config.output
    assert out is not None
    if not out.preview:
        return None
    path = check_output_target(
        out.preview_path or preview_path(out.path), inputs=inputs, what="output.preview_path"
    )
    if path.exists() and not (out.overwrite or out.resume):
        raise OutputExistsError(
            f"preview {path} already exists; pass --overwrite to replace it, or --no-preview"
        )
    return path


def stitch(
    config: StitchConfig | dict | str | Path,
    *,
    progress: ProgressFn | None = None,
    on_client: Any = None,
    notify: Callable[[str], None] | None = None,
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
    notify : callable(str), optional
        Called with a line of text while a cluster is slow to answer.

    Returns
    -------
    WriteResult

    Notes
    -----
    Everything that needs no cluster is checked before one starts: the config, every tile's
    header, the registration settings and the output (an input of the run, a folder, an
    existing output or partial run, a live run's lock, an absurd chunking).
    """
    config = _as_config(config)
    out = config.output
    if out is None:
        raise ConfigError("invalid configuration: output.path: required key is missing")
    tiles, layout = load_layout_and_tiles(config)
    inputs = tiles.paths
    csv = config.layout.positions
    inputs += [csv] if isinstance(csv, Path) else []
    fmt = output_format(
        out.path, out.format, ome_zarr_version=out.ome_zarr_version, shard=out.shard
    )
    shape = (*tiles.shape[:-2], *layout.mosaic_yx)
    channels = tiles.channels if tiles.axes.startswith("c") else None
    fmt.check(shape, tiles.dtype, ChunkCodec.parse(out.compression), len(channels or ()))
    for companion in fmt.companions(out.path):
        check_output(companion, overwrite=out.overwrite, resume=out.resume, inputs=inputs)
    check_output(
        fmt.data_path(out.path), overwrite=out.overwrite, resume=out.resume, inputs=inputs,
        folder=fmt.container == "zarr",
    )  # fmt: skip
    chunks = storage_chunks(shape, out.chunks)
    check_chunk_count(shape, chunks, tiles.dtype.itemsize)
    from lazystitch.fusion import label_dtype

    try:
        arrays = plan_arrays(
            fmt, out.dataset, shape, tiles.dtype, chunks, out.levels if out.pyramid else 1,
            channels=len(channels or ()),
            tile_map=label_dtype(len(layout.keys)) if out.tile_map else None,
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: output.levels: {exc}") from None
    if config.registration.enabled:
        _check_registration(config, tiles)
    _check_flatfield_path(config, inputs)
    preview = _check_preview_path(config, inputs)
    on_cluster = config.registration.enabled or config.tiles.flatfield == "estimate"
    job = None if on_cluster else _build(config, tiles, layout)

    started = active_client() is None  # else the run joins the caller's client

    def run() -> WriteResult:
        current = job or _build(config, tiles, layout)  # registration, estimates: on the cluster
        result = write_hdf5(
            current.fused,  # the graph alone: dask.array is not imported
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
            inputs=inputs,
            levels=out.levels if out.pyramid else 1,
            format=fmt.name,
            pixel_size=_output_pixel_size(config, tiles),
            channels=channels,
            axes=tiles.axes,
            ome_zarr_version=out.ome_zarr_version,
            tile_map=current.tile_map if out.tile_map else None,
        )
        if preview is None:
            return result
        try:
            write_preview(
                result.out, result.format, [lv["shape"] for lv in result.levels],
                channels is not None, current.layout.pixel_positions, current.layout.keys,
                tiles.shape[-2:], preview,
            )  # fmt: skip
        except (OSError, ValueError) as exc:  # the mosaic is complete; only its picture failed
            warnings.warn(f"could not write the preview {preview}: {exc}", LazystitchWarning, 2)
            return result
        return dataclasses.replace(result, files=[*result.files, str(preview)])

    job_bytes = sum(math.prod(a.shape) for a in arrays) * tiles.dtype.itemsize
    return _on_cluster(config, run, on_client, notify, job_bytes)
