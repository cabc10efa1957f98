"""The ``lazystitch`` command line: a thin shell over the public API."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from lazystitch import __version__
from lazystitch.fusion import BlendMode

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Stitch microscopy tiles into one chunked HDF5 mosaic, lazily, on a dask cluster.",
)

_DEBUG = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lazystitch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # distributed sets its loggers to INFO on import; quiet them after it
        import distributed  # noqa: F401

        for name in ("distributed", "tornado"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("bokeh").setLevel(logging.ERROR)  # its wildcard-host notice


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def _show_dashboard(client: object) -> None:
    link = getattr(client, "dashboard_link", None)
    nworkers = len(client.scheduler_info().get("workers", {}))  # type: ignore[attr-defined]
    _say(f"lazystitch: {nworkers} worker(s); dashboard: {link or 'not available'}")


def _parse_chunks(value: str | None, flag: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{flag} must be integers like 4,4; got {value!r}") from None


ConfigArg = Annotated[Path | None, typer.Argument(help="YAML config; flags override its keys.")]
TilesOpt = Annotated[
    str | None,
    typer.Option("--tiles", help="Tile pattern, e.g. 't_r{row:03d}_c{col:03d}.tif'."),
]
GridOpt = Annotated[str | None, typer.Option("--grid", help="ROWSxCOLS, e.g. 4x6.")]
OverlapOpt = Annotated[
    str | None, typer.Option("--overlap", help="Fraction (<1), percent (10%) or px; V or Y,X.")
]
PositionsOpt = Annotated[
    Path | None, typer.Option("--positions", help="CSV with header row,col,y,x.")
]
StartOpt = Annotated[
    int | None, typer.Option("--start", help="Number of the first row/col/index in names.")
]
OrderOpt = Annotated[
    str | None,
    typer.Option("--order", help="How {index} counts: row, column, snake-row, snake-column."),
]
MaxShiftOpt = Annotated[
    float | None, typer.Option("--max-shift", help="Registration search radius in px.")
]
ReportOpt = Annotated[
    Path | None, typer.Option("--report", help="Folder for the registration report.")
]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help="Worker processes.")]
MemoryOpt = Annotated[str | None, typer.Option("--memory-limit", help="Per worker, e.g. 4GiB.")]
SchedulerOpt = Annotated[
    str | None, typer.Option("--scheduler", help="Address of an existing scheduler.")
]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster", help="local, address, slurm, pbs, sge or lsf (see cluster: in YAML)."
    ),
]
JobsOpt = Annotated[int | None, typer.Option("--jobs", help="Worker jobs of a batch cluster.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing output.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON summary last.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


def _input_overrides(
    tiles, grid, overlap, positions, start, order, workers, memory_limit, scheduler, kind, jobs
) -> dict:
    """Config overrides from the flags that say which tiles, where, and on which cluster."""
    return {
        "tiles": {"pattern": tiles, "start": start, "order": order},
        "layout": {
            "grid": grid,
            "overlap": overlap,
            "positions": str(positions) if positions else None,
        },
        "cluster": {
            "kind": kind or ("address" if scheduler else None),
            "workers": workers,
            "memory_limit": memory_limit,
            "scheduler": scheduler,
            "jobs": jobs,
        },
    }


@app.command()
def stitch(
    config: ConfigArg = None,
    tiles: TilesOpt = None,
    grid: GridOpt = None,
    overlap: OverlapOpt = None,
    positions: PositionsOpt = None,
    start: StartOpt = None,
    order: OrderOpt = None,
    register: Annotated[
        bool, typer.Option("--register", help="Register the tiles on their overlaps first.")
    ] = False,
    max_shift: MaxShiftOpt = None,
    report: ReportOpt = None,
    blend: Annotated[BlendMode | None, typer.Option("--blend", help="Blend mode.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output HDF5 file.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset name.")] = None,
    chunks: Annotated[
        str | None, typer.Option("--chunks", help="Y,X or one value per axis.")
    ] = None,
    compression: Annotated[
        str | None, typer.Option("--compression", help="none, gzip[:L], lzf, blosc[:L], zstd[:L].")
    ] = None,
    workers: WorkersOpt = None,
    memory_limit: MemoryOpt = None,
    scheduler: SchedulerOpt = None,
    cluster: ClusterOpt = None,
    jobs: JobsOpt = None,
    write_mode: Annotated[
        str | None,
        typer.Option(
            "--write-mode",
            help="single (one process writes), shards (workers write shard files, assembled "
            "into one file), virtual (shards + a virtual-dataset file) or auto (default: "
            "shards for batch-job workers, else single).",
        ),
    ] = None,
    shard: Annotated[
        str | None, typer.Option("--shard", help="Shard size in chunks, Y,X (default 4,4).")
    ] = None,
    overwrite: OverwriteOpt = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a partial run.")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Stitch tiles into a chunked HDF5 mosaic."""
    from lazystitch.api import stitch as api_stitch
    from lazystitch.cluster import chunk_progress
    from lazystitch.config import load_config

    overrides = _input_overrides(
        tiles,
        grid,
        overlap,
        positions,
        start,
        order,
        workers,
        memory_limit,
        scheduler,
        cluster,
        jobs,
    )
    overrides |= {
        "registration": {
            "enabled": register or None,
            "max_shift": max_shift,
            "report": str(report) if report else None,
        },
        "fusion": {"blend": blend.value if blend else None},
        "output": {
            "path": str(out) if out else None,
            "dataset": dataset,
            "chunks": _parse_chunks(chunks, "--chunks"),
            "compression": compression,
            "overwrite": overwrite or None,
            "resume": resume or None,
            "write_mode": write_mode,
            "shard": _parse_chunks(shard, "--shard"),
        },
    }
    cfg = load_config(config, overrides)
    with chunk_progress("writing", enabled=not quiet) as progress:
        result = api_stitch(cfg, progress=progress, on_client=None if quiet else _show_dashboard)
    summary = result.to_dict()
    if not quiet:
        _say(
            f"lazystitch: wrote {result.out}:{result.dataset} {tuple(result.shape)} {result.dtype} "
            f"({result.chunks_written} chunks written, {result.chunks_skipped} reused; "
            f"write mode {result.write_mode}) "
            f"in {result.seconds:.1f} s"
        )
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(str(result.out))


@app.command("register")
def register_cmd(
    config: ConfigArg = None,
    tiles: TilesOpt = None,
    grid: GridOpt = None,
    overlap: OverlapOpt = None,
    positions: PositionsOpt = None,
    start: StartOpt = None,
    order: OrderOpt = None,
    out: Annotated[
        Path, typer.Option("--out", help="Positions CSV to write (row,col,y,x,label,score,...).")
    ] = Path("positions.csv"),
    report: ReportOpt = None,
    max_shift: MaxShiftOpt = None,
    workers: WorkersOpt = None,
    memory_limit: MemoryOpt = None,
    scheduler: SchedulerOpt = None,
    cluster: ClusterOpt = None,
    jobs: JobsOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Find the tiles' positions from their overlaps; write a positions CSV for stitch."""
    import time

    from lazystitch.api import register_tiles
    from lazystitch.config import load_config
    from lazystitch.errors import OutputExistsError

    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --overwrite to replace it")
    overrides = _input_overrides(
        tiles,
        grid,
        overlap,
        positions,
        start,
        order,
        workers,
        memory_limit,
        scheduler,
        cluster,
        jobs,
    )
    overrides["registration"] = {"max_shift": max_shift, "report": str(report) if report else None}
    cfg = load_config(config, overrides)
    t0 = time.perf_counter()
    reg = register_tiles(cfg, on_client=None if quiet else _show_dashboard)
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
    }
    if not quiet:
        _say(
            f"lazystitch: {summary['registered']} of {summary['tiles']} tiles registered, "
            f"{summary['stage-model']} placed by the stage model, {summary['isolated']} isolated; "
            f"{summary['pairs_accepted']}/{summary['pairs']} links accepted; wrote {out}"
        )
    typer.echo(json.dumps(summary) if as_json else str(out))


@app.command("validate-config")
def validate_config(config: Annotated[Path, typer.Argument(help="YAML config.")]) -> None:
    """Check a config file without reading any tile."""
    from lazystitch.config import load_config

    cfg = load_config(config)
    typer.echo(f"{config}: ok ({cfg.output.path})")


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Argument(help="Folder for the demo tiles and mosaic (replaced).")
    ] = Path("lazystitch-demo"),
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary last.")] = False,
) -> None:
    """Make a sample tile set, stitch it on a LocalCluster, and check the result."""
    from lazystitch.cluster import chunk_progress
    from lazystitch.demo import run_demo

    _say(f"lazystitch demo: writing 4x5 tiles of 512x512 uint16 to {directory / 'tiles'}")
    with chunk_progress("writing") as progress:
        res = run_demo(directory, workers=workers, progress=progress, on_client=_show_dashboard)
    r = res.result
    typer.echo(f"mosaic: {r.out} (dataset '{r.dataset}', {tuple(r.shape)} {r.dtype})")
    typer.echo(
        f"stitched in {r.seconds:.1f} s ({res.seconds_total:.1f} s with tile generation); "
        f"max |mosaic - source image| = {res.max_abs_error}"
    )
    if as_json:
        typer.echo(json.dumps({**r.to_dict(), "max_abs_error": res.max_abs_error}))


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="Output HDF5 file (or its .partial).")],
    dataset: Annotated[str | None, typer.Option("--dataset")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Describe an output: shape, dtype, chunks, compression, tiles, complete or partial."""
    from lazystitch.writers import describe_output

    desc = describe_output(path, dataset)
    if as_json:
        typer.echo(json.dumps(desc))
        return
    for key, value in desc.items():
        typer.echo(f"{key}: {value}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input gives one line on stderr and exit 1 (``--debug``: traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="lazystitch", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _say("lazystitch: aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        _say("lazystitch: interrupted; continue with --resume")
        sys.exit(130)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click usage errors: exit 2
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        from lazystitch.errors import LazystitchError

        kind = (
            "error"
            if isinstance(exc, (LazystitchError, OSError, ValueError))
            else type(exc).__name__
        )
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _say(f"lazystitch: {kind}: {msg}")
        sys.exit(1)


if __name__ == "__main__":
    main()
