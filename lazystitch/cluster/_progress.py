"""Progress reporting on stderr: a bar in a terminal, sparse log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["chunk_progress"]


@contextmanager
def chunk_progress(desc: str = "chunks", *, enabled: bool = True) -> Iterator:
    """Yield a ``progress(done, total)`` callback that draws on stderr.

    In a terminal it is a tqdm bar; otherwise a line every 10 % (batch logs stay readable).
    """
    if not enabled:
        yield None
        return
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = None

        def update(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc=desc, unit="chunk", file=sys.stderr)
            bar.n = done
            bar.refresh()

        try:
            yield update
        finally:
            if bar is not None:
                bar.close()
        return
    state = {"next": 0.0, "t0": time.perf_counter()}

    def log_line(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        if frac >= state["next"] or done == total:
            el = time.perf_counter() - state["t0"]
            print(f"{desc}: {done}/{total} ({frac:.0%}) {el:.1f}s", file=sys.stderr, flush=True)
            state["next"] = frac + 0.1

    yield log_line
