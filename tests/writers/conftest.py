"""Fixtures of the writer tests: the pyramid oracle."""

import numpy as np
import pytest


def oracle_downsample(a: np.ndarray) -> np.ndarray:
    """2x2 block means over the last two axes, one output pixel at a time (slow, obvious)."""
    h, w = a.shape[-2:]
    out = np.empty((*a.shape[:-2], (h + 1) // 2, (w + 1) // 2), dtype=np.float64)
    for i in range(out.shape[-2]):
        for j in range(out.shape[-1]):
            out[..., i, j] = a[..., 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean(axis=(-2, -1))
    if np.issubdtype(a.dtype, np.integer):
        out = np.floor(out + 0.5)
    return out.astype(a.dtype)


def _oracle_pyramid(a: np.ndarray, chunk: tuple[int, int], levels=None) -> list[np.ndarray]:
    """Levels down to the first that fits in one chunk (or ``levels`` in all)."""
    out = [a]
    while (levels is None and (out[-1].shape[-2] > chunk[0] or out[-1].shape[-1] > chunk[1])) or (
        levels is not None and len(out) < levels
    ):
        out.append(oracle_downsample(out[-1]))
    return out


@pytest.fixture
def oracle_pyramid():
    """The pyramid of a mosaic by definition (does not import lazystitch)."""
    return _oracle_pyramid


class Interrupt(Exception):
    """Raised by a progress callback to stop a write part way."""


@pytest.fixture
def stop_after():
    """``stop_after(n)``: a progress callback that raises ``stop_after.error`` once ``n``
    chunks are written."""

    def make(n):
        def progress(done, total):
            if done >= n:
                raise Interrupt

        return progress

    make.error = Interrupt
    return make
