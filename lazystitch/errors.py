"""Every exception and warning class lazystitch raises."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "LayoutError",
    "LazystitchError",
    "LazystitchWarning",
    "OutputExistsError",
    "OutputLockedError",
    "OutputTargetError",
    "PartialOutputError",
    "ResumeMismatchError",
    "TileError",
    "TileNotFoundError",
]


class LazystitchError(Exception):
    """Root of every error lazystitch raises on purpose."""


class ConfigError(LazystitchError, ValueError):
    """A configuration key is unknown or its value is invalid."""


class TileError(LazystitchError, ValueError):
    """A tile file is unreadable, truncated, or does not match the other tiles."""


class TileNotFoundError(TileError, FileNotFoundError):
    """A tile file named by the pattern or the positions file does not exist."""

    def __new__(cls, *args: object, **kwargs: object) -> TileNotFoundError:
        # OSError lays out the instance: pickling (tblib's, as distributed sends a worker's
        # error to the client) must create it with OSError's __new__, not ValueError's
        return FileNotFoundError.__new__(cls, *args)


class LayoutError(LazystitchError, ValueError):
    """The tile positions cannot be fused with the chosen design (see message)."""


class UnlinkedTilesError(LazystitchError, RuntimeError):
    """Registration linked too few tiles for its result to be trusted (see message); the
    :class:`~lazystitch.registration.Registration` it made is in ``.registration``."""

    def __init__(self, message: str, registration: object = None) -> None:
        super().__init__(message)
        self.registration = registration


class OutputExistsError(LazystitchError, FileExistsError):
    """The output file exists and ``overwrite`` was not asked for."""


class OutputTargetError(LazystitchError, ValueError):
    """The output path cannot be used: it is an input of the run, a folder, a device, or in a
    place that cannot be written; or a folder beside it holds files lazystitch did not write."""


class OutputLockedError(LazystitchError, RuntimeError):
    """Another run is writing the same output (its lock file names the host and pid)."""


class PartialOutputError(LazystitchError, FileExistsError):
    """A partial (interrupted) run is in the way and neither resume nor overwrite was asked."""


class ResumeMismatchError(LazystitchError, ValueError):
    """``resume`` was asked, but the partial run was made with different settings."""


class LazystitchWarning(UserWarning):
    """Warnings lazystitch emits (e.g. a partial run whose chunks could not all be reused)."""
