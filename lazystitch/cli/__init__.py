"""The ``lazystitch`` command line: a thin shell over the public API.

:func:`main` turns every way a run ends into one line on stderr and an exit code: 0 for
success, 1 for an error (``--debug``: the traceback), 2 for a usage error, and 128 + the
signal's number for a run stopped from outside (130 for Ctrl-C, 143 for the SIGTERM a batch
scheduler sends at its wall-time limit, 129 for SIGHUP), with the ``--resume`` hint.
"""

from __future__ import annotations

import errno
import signal
import sys
import warnings
from types import FrameType
from typing import Any

import click  # light: the rest of lazystitch is imported inside main()

__all__ = ["app", "main"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_stopped_by: list[int] = []


def _stop(signum: int, frame: FrameType | None) -> None:
    """Turn a stop signal into ``KeyboardInterrupt`` so that every ``finally`` runs: the
    writer makes what it wrote durable, the cluster shuts down."""
    if not _stopped_by:
        _stopped_by.append(signum)
    raise KeyboardInterrupt


def _redeliver(unraisable: Any) -> None:
    """``sys.unraisablehook``: a stop that Python swallowed is sent again.

    A ``KeyboardInterrupt`` raised by :func:`_stop` while the interpreter runs a weakref
    callback, a ``__del__`` or the garbage collector is printed as "Exception ignored" and
    dropped, and the run went on to the end and exited 0 (seen on SIGTERM and SIGHUP). Here
    the signal is sent again from another thread a moment later, once the main thread has
    left the callback (sent from within, it would be raised inside this hook and dropped
    too); should it land in a callback again, this hook sends it again.
    """
    import _thread
    import threading

    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _stopped_by:
        again = threading.Timer(0.01, _thread.interrupt_main, (signal.Signals(_stopped_by[0]),))
        again.daemon = True
        again.start()
        return
    _default_unraisablehook(unraisable)


_default_unraisablehook = sys.unraisablehook


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    print(f"lazystitch: warning: {message}", file=sys.stderr, flush=True)


def _is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in str(exc)


def _message(exc: BaseException, out: Any) -> str:
    """The one line an error gets."""
    from lazystitch.errors import LazystitchError
    from lazystitch.writers import OutputPaths

    if _is_disk_full(exc):
        where = f"writing {out}" if out else "writing"
        return f"error: disk full while {where}; free space and run again with --resume"
    text = str(exc).strip()
    msg = text.splitlines()[0] if text else type(exc).__name__
    kind = (
        "error" if isinstance(exc, (LazystitchError, OSError, ValueError)) else type(exc).__name__
    )
    if out is not None and "--resume" not in msg and OutputPaths(out.absolute()).leftovers():
        msg += "; what was written is kept: fix this and continue with --resume"
    return f"{kind}: {msg}"


def _leave(code: int) -> None:
    """End the process now that everything is closed and flushed, skipping the interpreter's
    teardown of the modules (measured: 0.4-0.7 s with dask, distributed and bokeh loaded, a
    tenth of a small job's wall time)."""
    import logging
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lazystitch`` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args  # anywhere on the line, as well as before the command
    args = [a for a in args if a != "--debug"]
    for sig in _STOP_SIGNALS:  # first: a stop during the imports below is a stop like any other
        signal.signal(sig, _stop)
    sys.unraisablehook = _redeliver
    if not debug:
        warnings.showwarning = _show_warning
    run: dict[str, Any] = {}
    try:
        from lazystitch.cli._app import RUN, app

        RUN.clear()
        run = RUN
        app.main(args=args, prog_name="lazystitch", standalone_mode=False)
        if argv is None:  # the command itself, not a caller in Python: leave at once
            _leave(0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        signum = _stopped_by[0] if _stopped_by else signal.SIGINT
        name = signal.Signals(signum).name
        hint = "; continue with --resume" if run.get("out") else ""
        print(f"lazystitch: interrupted by {name}{hint}", file=sys.stderr, flush=True)
        sys.exit(128 + signum)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click's usage errors: exit 2
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        print(f"lazystitch: {_message(exc, run.get('out'))}", file=sys.stderr, flush=True)
        sys.exit(1)


def __getattr__(name: str) -> Any:
    if name == "app":  # the click group, imported on first use
        from lazystitch.cli._app import app

        return app
    raise AttributeError(name)
