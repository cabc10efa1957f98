"""Notebooks run top to bottom on a fresh kernel."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    if path.name == "01_quickstart.ipynb":
        assert "max |mosaic - source| = 0" in outputs
    if path.name == "02_registration.ipynb":
        import re

        m = re.search(r"max error ([0-9.]+) px", outputs)
        assert m and float(m.group(1)) < 0.5
    if path.name == "04_formats.ipynb":
        assert "level 0 == the source image: True" in outputs
        assert "level 1 == 2x2 block mean of level 0: True" in outputs
        for fmt in ("bdv", "ome-zarr 0.5", "ome-zarr 0.4", "ome-tiff"):
            assert f"{fmt}: every level == the plain HDF5 pyramid: True" in outputs
        assert "napari level 2 == the plain HDF5 level 2: True" in outputs
        assert "('x', 'space', 'micrometer')" in outputs
        for line in (
            "every format holds the same tile map: True",
            "its levels take every other pixel: True",
            "the tile map agrees with the layout: True",
        ):
            assert line in outputs
        images = [
            o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
        ]
        assert len(images) >= 2  # the preview picture, the tile map beside the mosaic
    if path.name == "05_inputs.ipynb":
        import re

        assert "OME-TIFF by its metadata: max |mosaic - reference| = 0" in outputs
        assert "HDF5-held tiles == the OME-TIFF mosaic: True" in outputs
        m = re.search(r"registered on 'content': max error ([0-9.]+) px", outputs)
        assert m and float(m.group(1)) < 0.5
        assert "channels ['noise', 'content', 'inverted']" in outputs
        m = re.search(r"\(([0-9.]+)x less\)", outputs)
        assert m and float(m.group(1)) >= 3
    if path.name == "03_cluster.ipynb":
        for line in (
            "max |mosaic - reference| = 0",
            "identical to the uninterrupted run: True",
            "shards == single, chunk for chunk: True",
            "virtual == single, values: True",
        ):
            assert line in outputs
        assert "SLURM mosaic == LocalCluster mosaic: True" in outputs or (
            "no SLURM answers here" in outputs and not _slurm_answers()
        )


def _slurm_answers():
    import shutil
    import subprocess

    return bool(shutil.which("sinfo")) and subprocess.run(["sinfo", "-h"]).returncode == 0
