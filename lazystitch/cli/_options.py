"""The command line's options, derived from the config model: one table, one source of truth.

Each flag names the config key it sets (``--blend`` → ``fusion.blend``); its type, choices,
default and help text come from that key's pydantic field, so the CLI and the YAML cannot drift
apart. A flag that is not given leaves the YAML's value alone; every on/off key has a
``--flag/--no-flag`` pair, so a flag can also turn off a YAML ``true``.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import click
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from lazystitch.config import StitchConfig

__all__ = [
    "CLUSTER_FLAGS",
    "INPUT_FLAGS",
    "STITCH_FLAGS",
    "Flag",
    "apply_flags",
    "flag_labels",
    "overrides_from",
]


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets the config key ``key`` (``section.name``)."""

    name: str
    key: str
    metavar: str | None = None
    shown_default: str | None = None  # when the field's default is None but means something

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    def field(self) -> FieldInfo:
        section, name = self.key.split(".")
        model = _strip_none(StitchConfig.model_fields[section].annotation)
        return model.model_fields[name]

    def option(self) -> Callable[[Any], Any]:
        """The ``click.option`` decorator of this flag."""
        field = self.field()
        ann = _strip_none(field.annotation)
        default = None if field.default is PydanticUndefined else field.default
        if isinstance(default, enum.Enum):
            default = default.value
        shown = self.shown_default or _show(default)
        help_text = (field.description or "") + f"  [config: {self.key}]"
        if ann is bool:
            off = "--no-" + self.name.removeprefix("--")
            return click.option(
                f"{self.name}/{off}",
                self.dest,
                default=None,
                help=help_text,
                show_default=("yes" if default else "no") if shown is not None else False,
            )
        return click.option(
            self.name,
            self.dest,
            type=_click_type(ann),
            default=None,
            metavar=self.metavar,
            help=help_text,
            show_default=shown if shown is not None else False,
        )


def _strip_none(annotation: Any) -> Any:
    """``X | None`` → ``X``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _click_type(ann: Any) -> click.ParamType:
    if typing.get_origin(ann) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(ann)])
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return click.Choice([str(m.value) for m in ann])
    if ann is int:
        return click.INT
    if ann is float:
        return click.FLOAT
    return click.STRING  # tuples, paths, sizes: the config's validators parse the text


def _show(default: Any) -> str | None:
    if default is None or default == {}:
        return None
    if isinstance(default, (tuple, list)):
        return ",".join(str(v) for v in default)
    return str(default)


INPUT_FLAGS = (
    Flag("--tiles", "tiles.pattern", "PATTERN"),
    Flag("--start", "tiles.start", "N"),
    Flag("--order", "tiles.order"),
    Flag("--pixel-size", "tiles.pixel_size", "UM", shown_default="unknown"),
    Flag("--channels", "tiles.channels", "A,B,..."),
    Flag("--flatfield", "tiles.flatfield", "FILE.tif|estimate"),
    Flag("--darkfield", "tiles.darkfield", "FILE.tif"),
    Flag("--preprocess", "tiles.preprocess", "MODULE:FUNCTION"),
    Flag("--preprocess-dtype", "tiles.preprocess_dtype", "DTYPE"),
    Flag("--grid", "layout.grid", "ROWSxCOLS"),
    Flag("--overlap", "layout.overlap", "V|Y,X"),
    Flag("--positions", "layout.positions", "CSV|metadata"),
    Flag("--positions-unit", "layout.positions_unit"),
    Flag("--swap-xy", "layout.swap_xy"),
    Flag("--flip-y", "layout.flip_y"),
    Flag("--flip-x", "layout.flip_x"),
)
CLUSTER_FLAGS = (
    Flag("--cluster", "cluster.kind", shown_default="local (address with --scheduler)"),
    Flag("--workers", "cluster.workers", "N", shown_default="one per core"),
    Flag("--processes", "cluster.processes"),
    Flag("--dashboard", "cluster.dashboard"),
    Flag("--memory-limit", "cluster.memory_limit", "SIZE"),
    Flag("--scheduler", "cluster.scheduler", "ADDRESS"),
    Flag("--jobs", "cluster.jobs", "N"),
    Flag("--connect-timeout", "cluster.connect_timeout", "SECONDS"),
    Flag("--wait-timeout", "cluster.wait_timeout", "SECONDS"),
)
REGISTER_FLAGS = (
    Flag("--max-shift", "registration.max_shift", "PX", shown_default="20 px or 5% of the tile"),
    Flag("--report", "registration.report", "DIR"),
    Flag("--allow-unlinked", "registration.allow_unlinked"),
    Flag("--register-channel", "registration.channel", "NAME|INDEX", shown_default="the first"),
)
STITCH_FLAGS = (
    *INPUT_FLAGS,
    Flag("--register", "registration.enabled"),
    *REGISTER_FLAGS,
    Flag("--blend", "fusion.blend"),
    Flag("--out", "output.path", "FILE.h5|FILE.xml|DIR.ome.zarr|FILE.ome.tif"),
    Flag("--format", "output.format"),
    Flag("--ome-zarr-version", "output.ome_zarr_version"),
    Flag("--pyramid", "output.pyramid"),
    Flag("--preview", "output.preview"),
    Flag("--preview-path", "output.preview_path", "FILE.png", shown_default="OUT.preview.png"),
    Flag("--tile-map", "output.tile_map"),
    Flag("--levels", "output.levels", "N|auto"),
    Flag("--dataset", "output.dataset", "NAME"),
    Flag("--chunks", "output.chunks", "Y,X", shown_default="1024,1024"),
    Flag("--compression", "output.compression", "CODEC"),
    Flag("--write-mode", "output.write_mode"),
    Flag("--shard", "output.shard", "Y,X", shown_default="4,4"),
    Flag("--overwrite", "output.overwrite"),
    Flag("--resume", "output.resume"),
    *CLUSTER_FLAGS,
)
REGISTER_CMD_FLAGS = (*INPUT_FLAGS, *REGISTER_FLAGS, *CLUSTER_FLAGS)

# a missing section is named by the flags that fill it
_SECTION_LABELS = {
    "tiles": "--tiles (tiles.pattern)",
    "layout": "--grid with --overlap, or --positions (layout)",
    "output": "--out (output.path)",
}


def apply_flags(flags: Iterable[Flag]) -> Callable[[Any], Any]:
    """Decorator: add the flags' options to a click command."""

    def decorate(fn: Any) -> Any:
        for f in reversed(list(flags)):
            fn = f.option()(fn)
        return fn

    return decorate


def overrides_from(flags: Iterable[Flag], values: Mapping[str, Any]) -> dict[str, dict]:
    """Config overrides (nested ``{section: {key: value}}``) from the flags that were given."""
    out: dict[str, dict] = {}
    for f in flags:
        value = values.get(f.dest)
        if value is not None:
            section, name = f.key.split(".")
            out.setdefault(section, {})[name] = value
    cluster = out.get("cluster", {})
    if cluster.get("scheduler") and "kind" not in cluster:  # --scheduler alone: that cluster
        cluster["kind"] = "address"
    return out


def flag_labels(flags: Iterable[Flag]) -> dict[str, str]:
    """How errors name a config key on the command line: ``--out (output.path)``."""
    return {**_SECTION_LABELS, **{f.key: f"{f.name} ({f.key})" for f in flags}}
