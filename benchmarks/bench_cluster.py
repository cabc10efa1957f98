"""Cluster-scale benchmarks (issue 4): write modes, a 10,000-tile graph, a mosaic larger than
RAM, and kill -9 at random points followed by --resume.

Each subcommand runs ``lazystitch stitch`` (the CLI, as a user would) in separate processes and
reports wall time and the peak summed RSS of the process tree (client, scheduler, nannies,
workers; sampled every 50 ms, see ``_common.run_measured``).

    python benchmarks/bench_cluster.py modes --grids 8 14 --markdown benchmarks/RESULTS.md
    python benchmarks/bench_cluster.py graph --tiles 2500 5000 10000 --markdown benchmarks/RESULTS.md
    python benchmarks/bench_cluster.py big --grid 69 --markdown benchmarks/RESULTS.md
    python benchmarks/bench_cluster.py kill --trials 10 --markdown benchmarks/RESULTS.md

``modes``: single vs shards vs virtual on N x N grids of 2048² uint16 tiles (``bench_e2e``'s
tiles), uncompressed and zstd; the shards output is checked chunk for chunk against single.
``graph``: N small tiles (64², 10 % overlap): time to check the headers and build the graph,
its task count, and the time from starting the CLI to the first chunk written.
``big``: an N x N grid of 2048² tiles whose files are symlinks to 16 real tiles (the page cache
holds them; the pixels do not matter for memory), written uncompressed: with N = 69 the mosaic
is 32.4 GB (30.2 GiB) on a machine with 24 GiB of RAM.
``kill``: the test suite's job (5 x 6 tiles of 200², 24² gzip:9 chunks), killed with SIGKILL
(whole process group: client, scheduler, workers) at a uniformly random time within the clean
run's duration, then ``--resume``; the result is compared with an uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import tifffile

sys.path.insert(0, str(Path(__file__).parent))
from _common import append_markdown, run_measured
from bench_e2e import make_grid, specimen_tile

from lazystitch.writers import OutputPaths

DATA = Path(__file__).parent / "_data"


def stitch_cmd(pattern: str, grid: int, overlap: int, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "lazystitch", "stitch", "--tiles", pattern, "--grid", f"{grid}x{grid}",
        "--overlap", str(overlap), "--out", str(out), "--json", "--quiet", *extra,
    ]  # fmt: skip


def same_chunks(a: Path, b: Path) -> bool:
    """Both files store the same chunks with the same bytes (read one chunk at a time)."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        da_, db_ = fa["mosaic"], fb["mosaic"]
        n = da_.id.get_num_chunks()
        if n != db_.id.get_num_chunks():
            return False
        for i in range(n):
            off = da_.id.get_chunk_info(i).chunk_offset
            if da_.id.read_direct_chunk(off) != db_.id.read_direct_chunk(off):
                return False
    return True


def same_values(a: Path, b: Path, rows: int = 4096) -> bool:
    """Both files' datasets hold the same values (compared in bands of rows)."""
    import hdf5plugin  # noqa: F401

    with h5py.File(a) as fa, h5py.File(b) as fb:
        x, y = fa["mosaic"], fb["mosaic"]
        if x.shape != y.shape:
            return False
        return all(
            np.array_equal(x[..., r : r + rows, :], y[..., r : r + rows, :])
            for r in range(0, x.shape[-2], rows)
        )


# --- modes ------------------------------------------------------------------------------


def cmd_modes(args: argparse.Namespace) -> None:
    overlap = round(0.1 * args.tile)
    rows = []
    for n in args.grids:
        pattern = make_grid(args.data, n, args.tile, overlap)
        out_dir = args.data / "out"
        out_dir.mkdir(exist_ok=True)
        for comp in args.compression:
            res: dict = {}
            for mode in ("single", "shards", "virtual"):
                out = out_dir / f"{mode}_{n}.h5"
                for p in (out, *OutputPaths(out).leftovers(), OutputPaths(out).virtual_shards):
                    shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
                wall, peak, stdout = run_measured(
                    stitch_cmd(pattern, n, overlap, out, "--compression", comp,
                               "--write-mode", mode, "--workers", str(args.workers))
                )  # fmt: skip
                summary = json.loads(stdout.strip().splitlines()[-1])
                res[mode] = (wall, peak / 2**20)
                res["mb"] = np.prod(summary["shape"]) * 2 / 2**20
                print(
                    f"{n}x{n} {comp:6s} {mode:8s} {wall:7.1f} s  peak RSS {peak / 2**20:6.0f} MB",
                    flush=True,
                )
            single = out_dir / f"single_{n}.h5"
            res["shards_equal"] = same_chunks(single, out_dir / f"shards_{n}.h5")
            res["virtual_equal"] = same_values(single, out_dir / f"virtual_{n}.h5")
            for mode in ("single", "shards", "virtual"):
                out = out_dir / f"{mode}_{n}.h5"
                out.unlink(missing_ok=True)
                shutil.rmtree(OutputPaths(out).virtual_shards, ignore_errors=True)
            rows.append((f"{n}x{n}", comp, res))
    lines = [
        "| grid | mosaic MB | compression | single s | shards s (ratio) | virtual s (ratio) "
        "| peak RSS MB single / shards / virtual | shards = single, chunk bytes | virtual = single, values |",
        "|" + "---|" * 9,
    ]
    for grid, comp, r in rows:
        s, sh, v = r["single"], r["shards"], r["virtual"]
        lines.append(
            f"| {grid} | {r['mb']:.0f} | {comp} | {s[0]:.1f} | {sh[0]:.1f} ({sh[0] / s[0]:.2f}×) "
            f"| {v[0]:.1f} ({v[0] / s[0]:.2f}×) | {s[1]:.0f} / {sh[1]:.0f} / {v[1]:.0f} "
            f"| {'yes' if r['shards_equal'] else 'NO'} | {'yes' if r['virtual_equal'] else 'NO'} |"
        )
    append_markdown(
        args.markdown,
        f"Write modes, {args.tile}² uint16 tiles, 10 % overlap, {args.workers} workers, 4×4-chunk shards",
        "\n".join(lines),
    )


# --- graph ------------------------------------------------------------------------------


def small_grid(root: Path, n: int, tile: int) -> tuple[str, int]:
    folder = root / f"small{n}x{n}_{tile}"
    pattern = str(folder / "t_r{row:03d}_c{col:03d}.tif")
    overlap = round(0.1 * tile)
    if not (folder / "COMPLETE").exists():
        folder.mkdir(parents=True, exist_ok=True)
        step = tile - overlap
        for r in range(n):
            for c in range(n):
                tifffile.imwrite(
                    pattern.format(row=r, col=c), specimen_tile(r * step, c * step, tile)
                )
        (folder / "COMPLETE").write_text("ok")
    return pattern, overlap


def first_chunk_seconds(cmd: list[str], journal: Path, timeout: float = 600) -> float:
    """Seconds from starting ``cmd`` to its first journaled chunk (or to its end, if it
    finishes before its first durable batch); the run is then killed (the whole process
    group): this measures start-up, not throughput."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        while proc.poll() is None and time.perf_counter() - t0 < timeout:
            try:
                if journal.read_text().count("\n") >= 2:
                    return time.perf_counter() - t0
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        if proc.poll() == 0:  # done before its first durable batch (1 s): the whole run
            return time.perf_counter() - t0
        raise RuntimeError(f"no chunk was written: {proc.communicate()[1][-2000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cmd_graph(args: argparse.Namespace) -> None:
    import lazystitch
    from lazystitch.writers import FORMATS, ChunkCodec, plan_arrays
    from lazystitch.writers._tasks import unit_graph

    rows = []
    for count in args.tiles:
        n = round(count**0.5)
        pattern, overlap = small_grid(args.data, n, args.tile)
        out = args.data / "out" / f"graph_{n}.h5"
        out.parent.mkdir(exist_ok=True)
        config = {
            "tiles": {"pattern": pattern},
            "layout": {"grid": f"{n}x{n}", "overlap": overlap},
            "output": {"path": str(out), "chunks": [args.chunk, args.chunk]},
        }
        t0 = time.perf_counter()
        job = lazystitch.prepare(config)  # header check of every tile, layout, fusion graph
        t1 = time.perf_counter()
        m = job.mosaic
        chunks = (args.chunk, args.chunk)
        arrays = plan_arrays(FORMATS["hdf5"], "mosaic", m.shape, m.dtype, chunks, 1)
        graph, todo = unit_graph(m, arrays, ChunkCodec(), set())
        t2 = time.perf_counter()
        tasks = len(dict(graph))
        paths = OutputPaths(out)
        for p in (out, *paths.leftovers()):
            p.unlink(missing_ok=True)
        first = first_chunk_seconds(
            stitch_cmd(pattern, n, overlap, out, "--chunks", str(args.chunk), "--workers", str(args.workers)),
            paths.journal,
        )  # fmt: skip
        for p in (out, *paths.leftovers(), paths.final.with_name(out.name + ".lock")):
            p.unlink(missing_ok=True)
        rows.append((n * n, job.mosaic.shape, t1 - t0, t2 - t1, tasks, len(todo), first))
        print(rows[-1], flush=True)
    lines = [
        "| tiles | mosaic | prepare s (tile headers + fusion graph) | chunk graph s | tasks | tasks per tile "
        "| storage chunks | CLI start → first chunk written, s |",
        "|" + "---|" * 8,
    ]
    for t, shape, prep, build, tasks, chunks, first in rows:
        lines.append(
            f"| {t} | {shape[0]}×{shape[1]} | {prep:.1f} | {build:.1f} | {tasks} | {tasks / t:.1f} "
            f"| {chunks} | **{first:.1f}** |"
        )
    append_markdown(
        args.markdown,
        f"Graph size and start-up, {args.tile}² uint16 tiles, 10 % overlap, {args.chunk}² chunks, {args.workers} workers",
        "\n".join(lines),
    )


# --- big --------------------------------------------------------------------------------


def linked_grid(root: Path, n: int, tile: int, distinct: int = 16) -> tuple[str, int]:
    """N x N tile files that are symlinks to ``distinct`` real tiles."""
    folder = root / f"linked{n}x{n}_{tile}"
    pattern = str(folder / "t_r{row:03d}_c{col:03d}.tif")
    overlap = round(0.1 * tile)
    if not (folder / "COMPLETE").exists():
        folder.mkdir(parents=True, exist_ok=True)
        real = [folder / f"real_{i}.tif" for i in range(distinct)]
        for i, p in enumerate(real):
            tifffile.imwrite(p, specimen_tile(i * 977, i * 1331, tile))
        for r in range(n):
            for c in range(n):
                link = Path(pattern.format(row=r, col=c))
                link.unlink(missing_ok=True)
                link.symlink_to(real[(r * n + c) % distinct].name)
        (folder / "COMPLETE").write_text("ok")
    return pattern, overlap


def cmd_big(args: argparse.Namespace) -> None:
    n = args.grid
    pattern, overlap = linked_grid(args.data, n, args.tile)
    out = args.out_dir / f"big_{n}.h5"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    free = shutil.disk_usage(out.parent).free / 1e9
    wall, peak, stdout = run_measured(
        stitch_cmd(pattern, n, overlap, out, "--workers", str(args.workers), "--overwrite")
    )
    summary = json.loads(stdout.strip().splitlines()[-1])
    size = out.stat().st_size
    with h5py.File(out) as f:  # spot check: the last row of chunks was written
        ok = (
            bool(f["mosaic"].attrs["lazystitch_complete"])
            and f["mosaic"].id.get_num_chunks() == summary["chunks_total"]
        )
    out.unlink()
    ram = psutil.virtual_memory().total
    table = "\n".join([
        "| grid | tiles | mosaic | output file | machine RAM | wall s | throughput | peak RSS, all processes | all chunks stored |",
        "|" + "---|" * 9,
        f"| {n}×{n} | {n * n} | {summary['shape'][0]}×{summary['shape'][1]} uint16 | {size / 1e9:.1f} GB ({size / 2**30:.1f} GiB) "
        f"| {ram / 2**30:.0f} GiB | {wall:.0f} | {size / 2**20 / wall:.0f} MiB/s | **{peak / 2**30:.2f} GiB** | {'yes' if ok else 'NO'} |",
    ])  # fmt: skip
    print(f"disk free before: {free:.0f} GB")
    append_markdown(
        args.markdown,
        f"A mosaic larger than RAM, 2048² uint16 tiles (symlinks to 16 files), 10 % overlap, {args.workers} workers, write mode single",
        table,
    )


# --- kill -------------------------------------------------------------------------------


def cmd_kill(args: argparse.Namespace) -> None:
    from lazystitch.testing import make_tiles

    root = args.data / "kill"
    shutil.rmtree(root, ignore_errors=True)
    s = make_tiles(root / "tiles", grid=(5, 6), tile_yx=(200, 200), overlap=30, jitter=8, seed=3)
    rng = random.Random(args.seed)
    lines = [
        "| mode | trial | killed at s (of a clean run's s) | durable at kill | resume: reused / computed / total | identical |",
        "|" + "---|" * 6,
    ]
    ok_all = True
    for mode in args.modes:

        def cmd(out: Path, *extra: str, mode: str = mode) -> list[str]:
            return [
                sys.executable, "-m", "lazystitch", "stitch", "--tiles", s.pattern, "--positions",
                str(s.positions_csv), "--out", str(out), "--chunks", "24,24", "--compression", "gzip:9",
                "--workers", "2", "--write-mode", mode, "--json", "--quiet", *extra,
            ]  # fmt: skip

        clean = root / f"clean_{mode}.h5"
        t0 = time.perf_counter()
        subprocess.run(cmd(clean), check=True, capture_output=True)
        clean_s = time.perf_counter() - t0
        for trial in range(args.trials):
            out = root / f"{mode}_{trial}.h5"
            paths = OutputPaths(out)
            at = rng.uniform(0.05, 0.95) * clean_s
            proc = subprocess.Popen(
                cmd(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
            )
            time.sleep(at)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if mode == "single":
                try:
                    durable = paths.journal.read_text().count("\n") - 1
                except FileNotFoundError:
                    durable = 0
            else:
                durable = len(list(paths.shards.glob("shard_*.h5"))) if paths.shards.exists() else 0
            finished = out.exists()
            res = subprocess.run(cmd(out, "--resume"), capture_output=True, text=True)
            if res.returncode:
                raise RuntimeError(res.stderr[-2000:])
            sm = json.loads(res.stdout.strip().splitlines()[-1])
            same = (
                same_chunks(out, clean)
                if mode == "single" or mode == "shards"
                else same_values(out, clean)
            )
            ok_all &= same
            unit = "chunks" if mode == "single" else "shards"
            lines.append(
                f"| {mode} | {trial + 1} | {at:.2f} (of {clean_s:.1f}) | {'finished before the kill' if finished else f'{durable} {unit}'} "
                f"| {sm['chunks_skipped']} / {sm['chunks_written']} / {sm['chunks_total']} | {'yes' if same else 'NO'} |"
            )
            print(lines[-1], flush=True)
            out.unlink(missing_ok=True)
            shutil.rmtree(paths.virtual_shards, ignore_errors=True)
    append_markdown(
        args.markdown,
        "kill -9 of the whole job at random times, then --resume (5×6 tiles of 200², 24² gzip:9 chunks, 2 workers)",
        "\n".join(lines),
        f"All trials identical to the uninterrupted run: **{'yes' if ok_all else 'NO'}**.",
    )
    if not ok_all:
        sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", type=Path, default=DATA, help="tile cache (git-ignored)")
    common.add_argument("--workers", type=int, default=2)
    common.add_argument("--markdown", type=Path, help="append a results table to this file")
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("modes", parents=[common])
    m.add_argument("--grids", type=int, nargs="+", default=[8, 14])
    m.add_argument("--tile", type=int, default=2048)
    m.add_argument("--compression", nargs="+", default=["none", "zstd"])
    g = sub.add_parser("graph", parents=[common])
    g.add_argument("--tiles", type=int, nargs="+", default=[2500, 5000, 10000])
    g.add_argument("--tile", type=int, default=64)
    g.add_argument("--chunk", type=int, default=256)
    b = sub.add_parser("big", parents=[common])
    b.add_argument("--grid", type=int, default=69)
    b.add_argument("--tile", type=int, default=2048)
    b.add_argument("--out-dir", type=Path, default=DATA / "out")
    k = sub.add_parser("kill", parents=[common])
    k.add_argument("--trials", type=int, default=10)
    k.add_argument("--modes", nargs="+", default=["single", "shards"])
    k.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    {"modes": cmd_modes, "graph": cmd_graph, "big": cmd_big, "kill": cmd_kill}[args.what](args)


if __name__ == "__main__":
    main()
