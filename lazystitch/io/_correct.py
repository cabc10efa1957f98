"""Corrections applied inside every tile read: flat-/dark-field profiles and a user's hook.

A :class:`Correction` rides in the region reader that registration's pair tasks and fusion's
block tasks carry, so a corrected tile never exists anywhere but inside the task that reads
it: nothing is precomputed, written or held. Profiles are per pixel, so a window of a tile is
corrected with the same window of the profile. A hook (any NumPy function of a whole tile)
needs the whole tile: with one, every read reads its tile whole, runs the hook once and cuts
the window out of the result.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lazystitch._typing import Shape
from lazystitch.errors import ConfigError, TileError
from lazystitch.io._source import RegionReader, Window

__all__ = ["Corrected", "Correction", "OneChannel", "Profile", "hook_name", "import_hook"]


@dataclass(frozen=True)
class Profile:
    """A flat- or dark-field profile: ``(Y, X)`` for every channel, or ``(C, Y, X)``.

    Held as an array (``array``, from the API or an estimate with nowhere to be saved) or
    read from a TIFF (``path``) on first use in each process: a profile from a file crosses
    processes as its path, not its pixels."""

    path: str | None = None
    array: np.ndarray | None = None
    identity: str = ""

    @classmethod
    def from_file(cls, path: str | os.PathLike, what: str) -> Profile:
        """The profile in the TIFF ``path`` (checked now: it exists and is 2-D or 3-D)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"invalid configuration: tiles.{what}: {path} is not a file")
        pixels = _load(str(path), path.stat().st_mtime_ns)
        if pixels.ndim not in (2, 3):
            raise ConfigError(
                f"invalid configuration: tiles.{what}: {path} has shape {pixels.shape}; a "
                "profile is (Y, X), or (C, Y, X) with one plane per channel"
            )
        return cls(path=str(path), identity=_digest(pixels))

    @classmethod
    def from_array(cls, array: Any) -> Profile:
        pixels = np.asarray(array, dtype=np.float32)
        return cls(array=pixels, identity=_digest(pixels))

    def load(self) -> np.ndarray:
        if self.array is not None:
            return self.array
        assert self.path is not None
        return _load(self.path, os.stat(self.path).st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(path), dtype=np.float32)


def _digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()[:16]


def import_hook(spec: str) -> Callable[[np.ndarray], np.ndarray]:
    """The function ``"module:function"`` (or ``module.function``) names.

    Examples
    --------
    >>> import_hook("numpy:fliplr").__name__
    'fliplr'
    >>> import_hook("numpy:no_such_thing")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lazystitch.errors.ConfigError: invalid configuration: tiles.preprocess: ...
    """
    module, sep, name = spec.partition(":")
    if not sep:
        module, _, name = spec.rpartition(".")
    try:
        fn = importlib.import_module(module) if module else None
        for part in name.split("."):
            fn = getattr(fn, part)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"invalid configuration: tiles.preprocess: cannot import {spec!r} "
            f"('module:function'): {exc}"
        ) from None
    if not callable(fn):
        raise ConfigError(f"invalid configuration: tiles.preprocess: {spec!r} is not callable")
    return fn


def hook_name(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a hook (what the output's metadata and a resume record)."""
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


@dataclass(frozen=True)
class Correction:
    """What every read of a tile applies, in this order: ``(raw - darkfield) / flatfield``,
    then ``preprocess`` on the whole tile; integers are rounded to nearest and clipped.

    Attributes
    ----------
    flatfield, darkfield : Profile or None
    preprocess : callable or None
        ``f(tile) -> tile`` of the same shape and of dtype ``dtype``.
    dtype : numpy.dtype
        The corrected tiles' dtype (a hook may change it; it must say so).
    """

    dtype: np.dtype
    flatfield: Profile | None = None
    darkfield: Profile | None = None
    preprocess: Callable[[np.ndarray], np.ndarray] | None = None

    def describe(self) -> dict[str, str]:
        """What a resume compares and the output records (only what is set)."""
        out = {"dtype": self.dtype.name}
        if self.flatfield is not None:
            out["flatfield"] = self.flatfield.path or "array " + self.flatfield.identity
            out["flatfield_digest"] = self.flatfield.identity
        if self.darkfield is not None:
            out["darkfield"] = self.darkfield.path or "array " + self.darkfield.identity
            out["darkfield_digest"] = self.darkfield.identity
        if self.preprocess is not None:
            out["preprocess"] = hook_name(self.preprocess)
        return out

    def check(self, shape: Shape, axes: str) -> None:
        """Profiles that fit tiles of ``shape`` and ``axes`` (one clear line otherwise)."""
        for what, prof in (("flatfield", self.flatfield), ("darkfield", self.darkfield)):
            if prof is None:
                continue
            p = prof.load()
            channels = shape[axes.index("c")] if "c" in axes else None
            fits = p.shape[-2:] == tuple(shape[-2:]) and (
                p.ndim == 2 or (channels is not None and p.shape[0] == channels)
            )
            if not fits:
                per = f"(Y, X) = {tuple(shape[-2:])}" + (
                    f" or (C, Y, X) = {(channels, *shape[-2:])}" if channels else ""
                )
                raise ConfigError(
                    f"invalid configuration: tiles.{what}: the profile has shape {p.shape}, "
                    f"but tiles of shape {tuple(shape)} (axes {axes!r}) need {per}"
                )


@dataclass(frozen=True)
class Corrected:
    """A :class:`~lazystitch.io.RegionReader` whose reads come out corrected."""

    inner: RegionReader
    correction: Correction
    shape: Shape
    axes: str
    names: tuple[str, ...]  # the tiles, by place, for a hook's errors

    def __call__(self, index: int, window: Window) -> np.ndarray:
        return self.read(index, window)[0]

    def read(self, index: int, window: Window) -> tuple[np.ndarray, int]:
        c = self.correction
        if c.preprocess is None:
            pixels, nbytes = self.inner.read(index, window)
            return self._profiles(pixels, window), nbytes
        whole = (slice(0, self.shape[-2]), slice(0, self.shape[-1]))
        pixels, nbytes = self.inner.read(index, whole)
        tile = self._profiles(pixels, whole)
        out = c.preprocess(tile)
        if not isinstance(out, np.ndarray) or out.shape != tile.shape or out.dtype != c.dtype:
            got = (
                f"shape {out.shape}, dtype {out.dtype}"
                if isinstance(out, np.ndarray)
                else type(out).__name__
            )
            raise TileError(
                f"tile {self.names[index]}: tiles.preprocess {hook_name(c.preprocess)} returned "
                f"{got}; it must return shape {tile.shape}, dtype {c.dtype} (declare another "
                "dtype with tiles.preprocess_dtype)"
            )
        return out[..., window[0], window[1]], nbytes

    def _profiles(self, pixels: np.ndarray, window: Window) -> np.ndarray:
        c = self.correction
        if c.flatfield is None and c.darkfield is None:
            return pixels
        value = pixels.astype(np.float32)
        if c.darkfield is not None:
            value -= self._fit(c.darkfield.load(), window)
        if c.flatfield is not None:
            value /= np.maximum(self._fit(c.flatfield.load(), window), 1e-6)
        dtype = pixels.dtype
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            np.rint(value, out=value)
            np.clip(value, info.min, info.max, out=value)
        return value.astype(dtype)

    def _fit(self, profile: np.ndarray, window: Window) -> np.ndarray:
        """The window of a profile, shaped to broadcast over a read's leading axes."""
        part = profile[..., window[0], window[1]]
        if part.ndim == 3:  # (C, wy, wx) against (..., c, ..., wy, wx)
            after = len(self.axes) - self.axes.index("c") - 3
            part = part.reshape(part.shape[0], *(1,) * after, *part.shape[-2:])
        return part


@dataclass(frozen=True)
class OneChannel:
    """A :class:`~lazystitch.io.RegionReader` that keeps one channel of its reads (the whole
    read is still made: a window of every plane is one read)."""

    inner: RegionReader
    axis: int
    index: int

    def __call__(self, index: int, window: Window) -> np.ndarray:
        return self.read(index, window)[0]

    def read(self, index: int, window: Window) -> tuple[np.ndarray, int]:
        pixels, nbytes = self.inner.read(index, window)
        return np.take(pixels, self.index, axis=self.axis), nbytes
