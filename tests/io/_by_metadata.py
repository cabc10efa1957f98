"""What every reader that places tiles by their own metadata must do from the command line."""

import h5py
import numpy as np

from ..test_cli import _read, run


def stitch_by_metadata(pattern, out, want, px_um, workers=2):
    """``stitch --positions metadata`` of ``pattern`` gives exactly ``want`` and records the
    tiles' pixel size."""
    proc = run("stitch", "--tiles", pattern, "--positions", "metadata", "--out", out,
               "--workers", str(workers))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(_read(out), want)
    with h5py.File(out) as f:
        assert np.allclose(f["mosaic"].attrs["pixel_size_um"], px_um)
