"""Typed run settings: YAML files and CLI flags validated into pydantic models."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from lazystitch.errors import ConfigError
from lazystitch.fusion import BlendMode
from lazystitch.io import hook_name, pattern_fields
from lazystitch.writers import ChunkCodec, parse_levels

__all__ = [
    "ClusterOptions",
    "FusionOptions",
    "LayoutOptions",
    "RegistrationOptions",
    "StitchConfig",
    "TilesOptions",
    "WriteOptions",
    "load_config",
    "validate_config",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


def _numbers(value: Any, key: str, n: int | None = None) -> tuple[float, ...]:
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,x\s]+", value.strip()) if p]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    try:
        nums = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be numbers, got {value!r}") from None
    if n is not None and len(nums) not in (1, n):
        raise ValueError(f"{key} must be one value or {n}; got {value!r}")
    return nums


def _overlap_unit(part: Any) -> str:
    return "%" if isinstance(part, str) and part.strip().endswith("%") else "other"


def _overlap_value(part: Any) -> float:
    """One overlap value as layout takes it: a fraction of the tile (< 1) or whole pixels.

    ``"10%"`` is a percentage (0 to < 100), ``"20px"`` pixels, a bare number below 1 a fraction
    and a bare whole number pixels. Anything else is ambiguous and refused.
    """
    text = str(part).strip().lower()
    unit = "%" if text.endswith("%") else "px" if text.endswith("px") else ""
    number = text.removesuffix("%").removesuffix("px").strip()
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"overlap must be numbers, got {part!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"overlap must be >= 0; got {part!r}")
    if unit == "%":
        if value >= 100:
            raise ValueError(f"overlap {part!r} leaves no step between tiles (must be < 100%)")
        return value / 100
    if unit == "px" or value >= 1:
        if value != int(value):
            raise ValueError(
                f"overlap {part!r} is neither a fraction of the tile (< 1) nor whole pixels; "
                "write e.g. 0.15, 15% or 20px"
            )
        if unit == "" and value == 1 and (isinstance(part, float) or "." in number):
            raise ValueError(
                f"overlap {part!r} is ambiguous (a fraction must be < 1, and 100% leaves no "
                "step): for one pixel write 1px"
            )
    return value


class TilesOptions(_Model):
    pattern: str = Field(
        description="Tile file pattern with {row} and {col} fields (format specs allowed), "
        "e.g. 'tiles/tile_r{row:03d}_c{col:03d}.tif', or datasets in HDF5 files: "
        "'tiles.h5:/tile_{row}_{col}'. Relative paths are relative to the "
        "config file (or the working directory for CLI flags)."
    )
    start: int = Field(0, ge=0, description="Number of the first row/column/index in file names.")
    order: Literal["row", "column", "snake-row", "snake-column"] = Field(
        "row",
        description="How {index} counts tiles: row by row, column by column, or meandering "
        "(snake) by rows or columns.",
    )
    pixel_size: float | None = Field(
        None,
        gt=0,
        description="Pixel size in µm (Y and X), recorded in the output's metadata; unknown "
        "when not given.",
    )
    channels: tuple[str, ...] | None = Field(
        None,
        description="With a {channel} field in the pattern: the channels' values in the file "
        "names, in order (e.g. 'DAPI,GFP'); default: those the first tile's files give.",
    )
    flatfield: Literal["estimate"] | Path | None = Field(
        None,
        description="Flat-field profile divided out of every tile as it is read: a TIFF of "
        "(Y, X) or (C, Y, X) one plane per channel, or 'estimate' (from a sample of the tiles, "
        "on the cluster; saved beside the output as OUT.flatfield.tif).",
    )
    darkfield: Path | None = Field(
        None, description="Dark-field profile (TIFF) subtracted before the flat-field division."
    )
    preprocess: str | Callable[..., Any] | None = Field(
        None,
        description="A function applied to every whole tile as it is read, before registration "
        "and fusion: 'module:function' (in the API also the callable itself).",
    )
    preprocess_dtype: str | None = Field(
        None, description="The dtype tiles.preprocess returns, when not the tiles' own."
    )

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, v: str) -> str:
        pattern_fields(v)
        return v

    @field_validator("channels", mode="before")
    @classmethod
    def _split_channels(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",")]
        if isinstance(v, (list, tuple)):
            v = [str(p) for p in v]
            if not v or "" in v or len(set(v)) != len(v):
                raise ValueError(f"{v!r}: name each channel once, e.g. 'DAPI,GFP'")
        return v

    @field_validator("preprocess_dtype")
    @classmethod
    def _check_dtype(cls, v: str | None) -> str | None:
        import numpy as np

        if v is None:
            return v
        try:
            return np.dtype(v).name
        except TypeError:
            raise ValueError(f"{v!r} is not a NumPy dtype (e.g. float32, uint16)") from None

    @field_serializer("preprocess")
    def _name_hook(self, v: Any) -> str | None:
        return v if v is None or isinstance(v, str) else hook_name(v)


class LayoutOptions(_Model):
    grid: tuple[int, int] | None = Field(
        None, description="Grid as 'ROWSxCOLS' (e.g. '4x6'); tiles in raster order."
    )
    overlap: tuple[float, float] | None = Field(
        None,
        description="Overlap of neighbouring tiles, required with 'grid': a fraction of the "
        "tile (< 1, e.g. 0.1), a percentage ('10%') or whole pixels ('64' or '64px'); one "
        "value or 'Y,X'.",
    )
    positions: Literal["metadata"] | Path | None = Field(
        None,
        description="CSV with header 'row,col,y,x' giving each tile's top-left corner "
        "(cells may be missing), or 'metadata': the stage positions in the tile files "
        "(OME-XML), in µm, the tiles found on disk by the pattern. Instead of 'grid'.",
    )
    positions_unit: Literal["px", "um"] = Field(
        "px",
        description="Unit of a positions CSV: pixels, or µm (divided by the pixel size: "
        "--pixel-size, else the tiles' own).",
    )
    swap_xy: bool = Field(
        False, description="With 'positions': the CSV's y and x are exchanged (applied first)."
    )
    flip_y: bool = Field(
        False,
        description="With 'positions': the stage's y runs against the image's (row 0 at the "
        "bottom); y is negated.",
    )
    flip_x: bool = Field(
        False,
        description="With 'positions': the stage's x runs against the image's; x is negated.",
    )

    @field_validator("grid", mode="before")
    @classmethod
    def _parse_grid(cls, v: Any) -> Any:
        if v is None or isinstance(v, (list, tuple)):
            return v
        m = re.fullmatch(r"\s*(\d+)\s*[xX×,]\s*(\d+)\s*", str(v))  # noqa: RUF001
        if not m:
            raise ValueError(f"grid must look like '4x6' (rows x cols); got {v!r}")
        return int(m.group(1)), int(m.group(2))

    @field_validator("grid")
    @classmethod
    def _grid_positive(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and min(v) < 1:
            raise ValueError(f"grid must be at least 1x1; got {v[0]}x{v[1]}")
        return v

    @field_validator("overlap", mode="before")
    @classmethod
    def _parse_overlap(cls, v: Any) -> Any:
        if v is None:
            return v
        parts = [p for p in re.split(r"[,\s]+", v.strip()) if p] if isinstance(v, str) else v
        parts = list(parts) if isinstance(parts, (list, tuple)) else [parts]
        if len(parts) not in (1, 2):
            raise ValueError(f"overlap must be one value or two (Y,X); got {v!r}")
        units = {_overlap_unit(p) for p in parts}
        if len(units) > 1:
            raise ValueError(f"overlap mixes percent and other values: {v!r}")
        nums = tuple(_overlap_value(p) for p in parts)
        return nums * 2 if len(nums) == 1 else nums

    @model_validator(mode="after")
    def _one_source(self) -> LayoutOptions:
        if (self.grid is None) == (self.positions is None):
            raise ValueError("give exactly one of 'grid' (with 'overlap') or 'positions'")
        if self.grid is not None and self.overlap is None:
            raise ValueError("'grid' needs 'overlap' (how much neighbouring tiles overlap)")
        axes = [a for a in ("swap_xy", "flip_y", "flip_x") if getattr(self, a)]
        if self.grid is not None and axes:
            raise ValueError(
                f"{', '.join(axes)} turn the positions of a CSV; a grid is numbered by --order "
                "and its tile pattern instead"
            )
        return self


class FusionOptions(_Model):
    blend: BlendMode = Field(
        BlendMode.linear,
        description="How overlaps combine: linear (distance-weighted ramp), average, max, "
        "first or last (by (row, col) order).",
    )


class WriteOptions(_Model):
    path: Path = Field(
        description="Output: FILE.h5 (plain HDF5), FILE.xml (BigDataViewer XML, with its "
        "FILE.h5 beside it), DIR.ome.zarr (OME-Zarr, a folder) or FILE.ome.tif (pyramidal "
        "OME-TIFF)."
    )
    format: Literal["auto", "hdf5", "bdv", "ome-zarr", "ome-tiff"] = Field(
        "auto",
        description="hdf5: the mosaic at /mosaic, its levels beside it. bdv: BigDataViewer "
        "XML + HDF5 (Fiji, BigStitcher). ome-zarr: OME-NGFF (napari, neuroglancer, MoBIE, "
        "Fiji's OME-Zarr reader). ome-tiff: tiled, the levels as SubIFDs (QuPath, ASHLAR users); "
        "none or gzip compression. auto: bdv for an output ending in .xml, ome-zarr for .zarr, "
        "ome-tiff for .ome.tif, else hdf5.",
    )
    ome_zarr_version: Literal["0.5", "0.4"] = Field(
        "0.5",
        description="OME-Zarr only: 0.5 (Zarr v3; sharded with --shard) or 0.4 (Zarr v2, for "
        "MoBIE and older tools).",
    )
    pyramid: bool = Field(True, description="Write a multiscale pyramid (2x2 block means).")
    preview: bool = Field(
        True,
        description="Write a picture of the mosaic (from a level of at most 1024 px) with the "
        "tiles' outlines and (row, col) once it is complete.",
    )
    preview_path: Path | None = Field(
        None, description="Where the preview goes; default OUT.preview.png beside the output."
    )
    tile_map: bool = Field(
        False,
        description="Also write a tile map: a label array beside the mosaic (with its own "
        "pyramid, nearest) saying which tile each pixel came from (label n = the n-th tile "
        "in (row, col) order, 0 = none; where tiles overlap, the one of largest blend weight).",
    )
    levels: int | Literal["auto"] = Field(
        "auto",
        description="Pyramid levels in all, full resolution included: a number, or auto "
        "(halve until a level fits in one chunk).",
    )
    dataset: str = Field(
        "mosaic",
        min_length=1,
        description="Dataset name in the file, e.g. 'mosaic' or 'images/mosaic'.",
    )
    chunks: tuple[int, ...] | None = Field(
        None,
        description="Storage chunk shape: 'Y,X' (leading axes get 1), one value for square Y,X "
        "chunks, or one value per axis; default 1024x1024.",
    )
    compression: str = Field(
        "none", description="none, gzip[:level], lzf, blosc[:level] or zstd[:level]."
    )
    overwrite: bool = Field(False, description="Replace an existing output or partial run.")
    resume: bool = Field(False, description="Continue a partial (interrupted) run.")
    write_mode: Literal["auto", "single", "shards", "virtual"] = Field(
        "auto",
        description="single: workers encode chunks, one process writes the file. shards: "
        "workers write shard files beside the output (a filesystem all workers see), assembled "
        "into one self-contained file at the end. virtual: the shards stay in OUT.shards/ and "
        "OUT is an HDF5 virtual dataset over them. auto (default): shards when the workers are "
        "batch jobs (cluster.kind slurm, pbs, sge, lsf), else single.",
    )
    shard: tuple[int, ...] | None = Field(
        None,
        description="Shard size in storage chunks: for the shard write modes of the HDF5 "
        "formats ('Y,X', one value for square shards, or one per axis; default 4x4), and for "
        "OME-Zarr 0.5, Zarr v3 sharding (one task writes each whole shard; default: none).",
    )

    @field_validator("chunks", "shard", mode="before")
    @classmethod
    def _parse_chunks(cls, v: Any, info: Any) -> Any:
        if v is None:
            return v
        nums = _numbers(v, info.field_name)
        if any(x < 1 or x != int(x) for x in nums):
            raise ValueError(f"{info.field_name} must be positive integers; got {v!r}")
        return tuple(int(x) for x in nums)

    @field_validator("levels", mode="before")
    @classmethod
    def _check_levels(cls, v: Any) -> Any:
        return parse_levels(v)

    @field_validator("compression")
    @classmethod
    def _check_compression(cls, v: str) -> str:
        return str(ChunkCodec.parse(v))

    @field_validator("dataset")
    @classmethod
    def _check_dataset(cls, v: str) -> str:
        parts = v.split("/")
        if not v.strip() or any(p in ("", ".", "..") for p in parts):
            raise ValueError(
                f"dataset must be a name like 'mosaic' or 'group/mosaic' (no leading or "
                f"doubled '/', no '.' or '..'); got {v!r}"
            )
        return v

    @field_validator("path", mode="before")
    @classmethod
    def _check_path(cls, v: Any) -> Any:
        text = str(v) if isinstance(v, (str, os.PathLike)) else None
        if text is not None:
            name = Path(text).name
            if not text.strip() or text.endswith(("/", os.sep)) or name in ("", ".", ".."):
                raise ValueError(f"path must name a file, e.g. mosaic.h5; got {text!r}")
        return v


class RegistrationOptions(_Model):
    enabled: bool = Field(
        False, description="Register tiles on their overlaps before fusing (stitch --register)."
    )
    max_shift: float | None = Field(
        None,
        gt=0,
        description="How far (px) a tile may sit from its nominal place relative to a neighbour; "
        "also the margin read around each overlap. Default: 20 px or 5 % of the tile.",
    )
    max_residual: float = Field(
        2.0, gt=0, description="Links disagreeing with the global solution by more px are dropped."
    )
    report: Path | None = Field(
        None, description="Folder for the registration report (registration.json)."
    )
    allow_unlinked: bool = Field(
        False,
        description="Go on (with a warning, recorded in the report) when fewer than half the "
        "tiles register; by default that stops the run, as its layout is probably wrong.",
    )
    channel: int | str | None = Field(
        None,
        description="The channel registration uses, by name or index (default: the first); "
        "the positions found apply to every channel.",
    )


CLUSTER_KINDS = ("local", "address", "slurm", "pbs", "sge", "lsf")
MIN_WORKER_MEMORY = 256 << 20
MAX_WORKERS_PER_CORE = 4


class ClusterOptions(_Model):
    kind: Literal["local", "address", "slurm", "pbs", "sge", "lsf"] = Field(
        "local",
        description="local (a LocalCluster), address (an existing scheduler) or a "
        "dask-jobqueue kind: slurm, pbs, sge, lsf. Default: address if scheduler is set, "
        "else local.",
    )
    workers: int | None = Field(None, ge=1, description="Workers (default: one per core).")
    processes: bool = Field(
        False,
        description="LocalCluster: worker processes, or (default) one worker whose threads "
        "run in the lazystitch process: measured faster on one machine, since no chunk is "
        "pickled and sent to the writing process.",
    )
    dashboard: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Serve the LocalCluster's dashboard: on, off, or auto: on for a job big "
        "enough to watch (4 GiB of pixels or more, every pyramid level counted). Measured: "
        "starting it costs ~0.8 s, a tenth of a 1 GB job.",
    )
    memory_limit: str = Field(
        "auto",
        description="Memory limit per LocalCluster worker, e.g. '4GiB' (at least "
        f"{MIN_WORKER_MEMORY >> 20} MiB); 'auto' splits the machine's memory among workers.",
    )
    scheduler: str | None = Field(
        None, description="Address of an existing dask scheduler instead of a LocalCluster."
    )
    jobs: int = Field(
        2, ge=1, description="Worker jobs kept running (a job that dies is replaced)."
    )
    max_jobs: int | None = Field(
        None, ge=1, description="Scale adaptively from jobs up to this many with the load."
    )
    jobqueue: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings passed to dask-jobqueue's cluster class (cores, memory, walltime, "
        "queue, account, job_script_prologue, interface, log_directory, ...).",
    )
    wait_timeout: float = Field(
        300.0, gt=0, description="Seconds to wait for the first worker to join."
    )
    connect_timeout: float = Field(
        30.0, gt=0, description="Seconds to wait for an existing scheduler to answer."
    )

    @field_validator("memory_limit")
    @classmethod
    def _check_memory(cls, v: str) -> str:
        if str(v).strip().lower() == "auto":
            return "auto"
        from dask.utils import parse_bytes

        try:
            nbytes = parse_bytes(str(v))
        except (ValueError, TypeError):
            raise ValueError(f"memory_limit must be like 4GiB or auto; got {v!r}") from None
        if nbytes < MIN_WORKER_MEMORY:
            raise ValueError(
                f"memory_limit {v!r} is too small: a worker needs at least "
                f"{MIN_WORKER_MEMORY >> 20} MiB"
            )
        return str(v)

    @field_validator("workers")
    @classmethod
    def _check_workers(cls, v: int | None) -> int | None:
        cores = os.cpu_count() or 1
        if v is not None and v > MAX_WORKERS_PER_CORE * cores:
            raise ValueError(
                f"workers {v} is more than {MAX_WORKERS_PER_CORE} per core "
                f"({cores} cores here); each worker is a process"
            )
        return v

    @model_validator(mode="before")
    @classmethod
    def _default_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") is None:
            data = {**data, "kind": "address" if data.get("scheduler") else "local"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ClusterOptions:
        if self.kind == "address" and not self.scheduler:
            raise ValueError("scheduler is required when kind is address")
        if self.scheduler and self.kind != "address":
            raise ValueError(f"scheduler is only used with kind address, not {self.kind}")
        if self.kind == "address" and self.workers is not None:
            raise ValueError(
                "workers cannot be set with an existing scheduler: its workers are already running"
            )
        if self.jobqueue and self.kind in ("local", "address"):
            raise ValueError(f"jobqueue is only used with slurm, pbs, sge or lsf, not {self.kind}")
        if self.max_jobs is not None and self.max_jobs < self.jobs:
            raise ValueError(f"max_jobs ({self.max_jobs}) is less than jobs ({self.jobs})")
        return self


class StitchConfig(_Model):
    tiles: TilesOptions
    layout: LayoutOptions
    registration: RegistrationOptions = RegistrationOptions()
    fusion: FusionOptions = FusionOptions()
    output: WriteOptions | None = None
    cluster: ClusterOptions = ClusterOptions()


def _format_errors(
    exc: ValidationError, source: str, labels: Mapping[str, str] | None = None
) -> str:
    """One line naming each bad key; ``labels`` renames keys (the CLI adds its flags)."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{(labels or {}).get(key, key)}: {msg}")
    return f"invalid configuration{source}: " + "; ".join(lines)


def _resolve(data: dict, base: Path | None) -> dict:
    """Make relative paths in a config file relative to the file's folder."""
    if base is None:
        return data
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for section, key in (
        ("tiles", "pattern"),
        ("layout", "positions"),
        ("output", "path"),
        ("registration", "report"),
        ("tiles", "flatfield"),
        ("tiles", "darkfield"),
    ):
        sec = out.get(section)
        words = ("metadata", "estimate")  # values that are not paths
        if isinstance(sec, dict) and isinstance(sec.get(key), str) and sec[key] not in words:
            p = Path(sec[key]).expanduser()
            sec[key] = str(p if p.is_absolute() else base / p)
    return out


def _merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for k, v in overrides.items():
        if isinstance(v, dict):
            merged = _merge(out[k] if isinstance(out.get(k), dict) else {}, v)
            if merged or k in out or not v:  # drop only sections of all-None flags
                out[k] = merged
        elif v is not None:
            out[k] = v
    return out


def validate_config(
    data: dict, *, source: str = "", labels: Mapping[str, str] | None = None
) -> StitchConfig:
    """Validate a plain dict into :class:`StitchConfig`.

    Raises
    ------
    ConfigError
        Naming each bad key (dotted, e.g. ``fusion.blend``) and what is wrong with it.
    """
    try:
        return StitchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source, labels)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice (lines {seen[key]} and {line})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict:
    """The mapping a YAML config file holds; errors name the file and the line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder, not a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a YAML text file (not UTF-8)") from None
    if "\x00" in text:
        raise ConfigError(f"config file {path} is not a YAML text file (binary data)")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"config file {path}{where}: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of sections (tiles:, layout:, …)")
    return data


def load_config(
    path: str | Path | None = None,
    overrides: dict | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> StitchConfig:
    """Read a YAML config (optional), apply ``overrides`` (CLI flags), and validate.

    ``labels`` names keys in error messages (``{"output.path": "--out (output.path)"}``).

    ``layout.grid`` and ``layout.positions`` are alternatives: an override of one drops the
    other from the file.

    Examples
    --------
    >>> cfg = load_config(None, {"tiles": {"pattern": "t_{row}_{col}.tif"},
    ...                          "layout": {"grid": "2x3", "overlap": 0.1},
    ...                          "output": {"path": "out.h5"}})
    >>> cfg.layout.grid, cfg.fusion.blend.value
    ((2, 3), 'linear')
    """
    data: dict = {}
    source = ""
    if path is not None:
        path = Path(path)
        source = f" in {path}"
        data = _read_yaml(path)
        data = _resolve(data, path.parent)
    overrides = overrides or {}
    lay = overrides.get("layout") or {}
    if isinstance(data.get("layout"), dict):
        if lay.get("grid") is not None:
            data["layout"].pop("positions", None)
        if lay.get("positions") is not None:
            data["layout"].pop("grid", None)
    return validate_config(_merge(data, overrides), source=source, labels=labels)
