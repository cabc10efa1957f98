"""The ``lazystitch`` commands: a thin shell over the public API."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from lazystitch._version import __version__
from lazystitch.cli._options import (
    REGISTER_CMD_FLAGS,
    STITCH_FLAGS,
    apply_flags,
    flag_labels,
    overrides_from,
)

__all__ = ["RUN", "app", "say"]

RUN: dict[str, Any] = {}  # what main() needs to word an interruption or error: the output

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def say(msg: str) -> None:
    """One line on stderr (progress, notices and errors all go there; results to stdout)."""
    click.echo(msg, err=True)


def _show_dashboard(client: Any) -> None:
    from lazystitch.cluster import dashboard_link

    link = dashboard_link(client)
    workers = client.scheduler_info().get("workers", {})
    threads = sum(int(w.get("nthreads", 1)) for w in workers.values())
    say(
        f"lazystitch: {len(workers)} worker(s), {threads} thread(s); "
        f"dashboard: {link or 'off (--dashboard on serves it)'}"
    )


def _quiet_logs(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # distributed sets its loggers to INFO on import; quiet them after it
        import distributed  # noqa: F401

        # errors reach the user as exceptions with one clear line; distributed's own logs of
        # the same failures (a task's "Compute Failed", a heartbeat at shutdown) are noise
        # (distributed's config sets some child loggers, e.g. tornado.application, explicitly)
        quiet = ("distributed", "tornado", "asyncio")
        names = [*quiet, *logging.root.manager.loggerDict]
        for name in names:
            if name.split(".")[0] in quiet:
                logging.getLogger(name).setLevel(logging.CRITICAL)
        logging.getLogger("bokeh").setLevel(logging.ERROR)  # its wildcard-host notice


@click.group(
    context_settings=_CONTEXT,
    epilog="Run 'lazystitch COMMAND --help' for a command's options; "
    "'lazystitch demo' runs the whole job on built-in demo data.",
)
@click.version_option(
    __version__, "--version", prog_name="lazystitch", message="%(prog)s %(version)s"
)
@click.option("--verbose", "-v", is_flag=True, help="Log more (distributed's logs included).")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
def app(verbose: bool, debug: bool) -> None:
    """Stitch microscopy tiles into one chunked HDF5 mosaic, lazily, on a dask cluster."""
    _quiet_logs(verbose)


ConfigArg = click.argument(
    "config",
    required=False,
    type=click.Path(path_type=Path, dir_okay=True),
    metavar="[CONFIG.yaml]",
)
JsonOpt = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary last.")
QuietOpt = click.option("--quiet", "-q", is_flag=True, help="No progress output.")

STITCH_EXAMPLES = """\b
Examples:
  lazystitch stitch --tiles 'data/t_r{row:03d}_c{col:03d}.tif' --grid 8x12 --overlap 10% \\
      --out mosaic.h5
  lazystitch stitch --tiles 'data/t_{row}_{col}.tif' --positions positions.csv --out mosaic.h5
  lazystitch stitch run.yaml --blend max --resume
  lazystitch info mosaic.h5
"""


def _load(config: Path | None, overrides: dict, flags: Any) -> Any:
    from lazystitch.config import load_config

    return load_config(config, overrides, labels=flag_labels(flags))


def _look(result: Any) -> str:
    """How to look at a result: ``lazystitch info``, and its picture when one was written."""
    pictures = [f for f in result.files if f.endswith(".preview.png")]
    return f"look at it with: lazystitch info {result.out}" + (
        f", or open the picture {pictures[0]}" if pictures else ""
    )


@app.command(context_settings=_CONTEXT, no_args_is_help=True, epilog=STITCH_EXAMPLES)
@ConfigArg
@apply_flags(STITCH_FLAGS)
@JsonOpt
@QuietOpt
def stitch(config: Path | None, as_json: bool, quiet: bool, **flags: Any) -> None:
    """Stitch tiles into a chunked, multiscale mosaic (HDF5, BigDataViewer, OME-Zarr, OME-TIFF).

    Give the tiles (--tiles), where they sit (--grid with --overlap, or --positions) and the
    output (--out) as flags, or in a YAML config (every key: configs/example.yaml); flags
    override the config's keys.
    """
    from lazystitch.api import stitch as api_stitch
    from lazystitch.cluster import chunk_progress
    from lazystitch.errors import ConfigError
    from lazystitch.writers import check_output_target

    cfg = _load(config, overrides_from(STITCH_FLAGS, flags), STITCH_FLAGS)
    if cfg.output is None:
        raise ConfigError("invalid configuration: --out (output.path): required key is missing")
    check_output_target(cfg.output.path, inputs=[config] if config else [], what="--out")
    RUN["out"] = cfg.output.path
    with chunk_progress("writing", enabled=not quiet) as progress:
        result = api_stitch(
            cfg, progress=progress, on_client=None if quiet else _show_dashboard, notify=say
        )
    if not quiet:
        say(
            f"lazystitch: wrote {result.out}:{result.dataset} {tuple(result.shape)} {result.dtype} "
            f"({result.chunks_written} chunks written, {result.chunks_skipped} reused; "
            f"write mode {result.write_mode}) in {result.seconds:.1f} s; {_look(result)}"
        )
    click.echo(json.dumps(result.to_dict()) if as_json else str(result.out))


REGISTER_EXAMPLES = """\b
Examples:
  lazystitch register --tiles 'data/t_r{row:03d}_c{col:03d}.tif' --grid 8x8 --overlap 10% \\
      --max-shift 40 --out positions.csv --report report/
  lazystitch stitch --tiles 'data/t_r{row:03d}_c{col:03d}.tif' --positions positions.csv --out m.h5
"""


@app.command("register", context_settings=_CONTEXT, no_args_is_help=True, epilog=REGISTER_EXAMPLES)
@ConfigArg
@apply_flags(REGISTER_CMD_FLAGS)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("positions.csv"),
    show_default=True,
    metavar="CSV",
    help="Positions CSV to write (row,col,y,x,label,score,residual).",
)
@click.option("--overwrite/--no-overwrite", default=False, show_default=True, help="Replace --out.")
@JsonOpt
@QuietOpt
def register_cmd(
    config: Path | None, out: Path, overwrite: bool, as_json: bool, quiet: bool, **flags: Any
) -> None:
    """Find the tiles' positions from their overlaps; write a positions CSV for stitch."""
    from lazystitch.api import register_tiles
    from lazystitch.errors import OutputExistsError
    from lazystitch.writers import check_output_target

    cfg = _load(config, overrides_from(REGISTER_CMD_FLAGS, flags), REGISTER_CMD_FLAGS)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"--out {out} already exists; pass --overwrite to replace it")
    check_output_target(out, inputs=[*_inputs(cfg), *([config] if config else [])], what="--out")
    t0 = time.perf_counter()
    reg = register_tiles(cfg, on_client=None if quiet else _show_dashboard, notify=say)
    reg.write_csv(out)
    summary = {
        "out": str(out),
        "tiles": len(reg.solution.keys),
        **reg.report()["summary"],
        "threshold": round(reg.threshold, 4),
        "report": str(cfg.registration.report / "registration.json")
        if cfg.registration.report
        else None,
        "seconds": time.perf_counter() - t0,
        "stages": {k: round(v, 3) for k, v in reg.seconds.items()},
    }
    if not quiet:
        say(
            f"lazystitch: {summary['registered']} of {summary['tiles']} tiles registered, "
            f"{summary['stage-model']} placed by the stage model, {summary['isolated']} isolated; "
            f"{summary['pairs_accepted']}/{summary['pairs']} links accepted; wrote {out}"
        )
    click.echo(json.dumps(summary) if as_json else str(out))


def _inputs(cfg: Any) -> list[Path]:
    """The files a run reads that no output may replace (the tiles are checked by the API)."""
    return [p for p in (cfg.layout.positions,) if isinstance(p, Path)]


@app.command("validate-config", context_settings=_CONTEXT)
@click.argument("config", type=click.Path(path_type=Path), metavar="CONFIG.yaml")
def validate_config(config: Path) -> None:
    """Check a config file without reading any tile."""
    cfg = _load(config, {}, ())
    where = f"output {cfg.output.path}" if cfg.output else "no output section (give --out)"
    click.echo(f"{config}: ok ({where})")


@app.command(context_settings=_CONTEXT)
@click.argument(
    "directory", type=click.Path(path_type=Path), default=Path("lazystitch-demo"), required=False
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes.")
@JsonOpt
def demo(directory: Path, workers: int | None, as_json: bool) -> None:
    """Make a sample tile set in DIRECTORY (default ./lazystitch-demo; its tiles and mosaic are
    replaced), stitch it on a LocalCluster, and check the result."""
    from lazystitch.cluster import chunk_progress
    from lazystitch.demo import run_demo

    say(f"lazystitch demo: writing 4x5 tiles of 512x512 uint16 to {directory / 'tiles'}")
    with chunk_progress("writing") as progress:
        res = run_demo(directory, workers=workers, progress=progress, on_client=_show_dashboard)
    r = res.result
    click.echo(f"mosaic: {r.out} (dataset '{r.dataset}', {tuple(r.shape)} {r.dtype})")
    click.echo(
        f"stitched in {r.seconds:.1f} s ({res.seconds_total:.1f} s with tile generation); "
        f"max |mosaic - source image| = {res.max_abs_error}"
    )
    click.echo(_look(r))
    if as_json:
        click.echo(json.dumps({**r.to_dict(), "max_abs_error": res.max_abs_error}))


@app.command(context_settings=_CONTEXT)
@click.argument("path", type=click.Path(path_type=Path), metavar="FILE.h5")
@click.option("--dataset", default=None, metavar="NAME", help="Dataset (default: the mosaic).")
@JsonOpt
def info(path: Path, dataset: str | None, as_json: bool) -> None:
    """Describe an output (or its .partial): shape, dtype, chunks, compression, tiles, state."""
    from lazystitch.writers import describe_output

    desc = describe_output(path, dataset)
    if as_json:
        click.echo(json.dumps(desc))
        return
    for key, value in desc.items():
        if key == "levels" and value:
            value = f"{len(value)}: " + ", ".join(
                "x".join(map(str, lv["shape"])) + f" ({lv['name']})" for lv in value
            )
        elif key == "pixel_size_um" and value is None:
            value = "unknown"
        click.echo(f"{key}: {value}")
