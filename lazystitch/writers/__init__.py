"""Writers: store a lazy mosaic in a chunked HDF5 dataset, exactly once, resumably."""

from lazystitch.writers._codec import ChunkCodec, Compression
from lazystitch.writers._hdf5 import (
    COMPLETE_ATTR,
    RUN_ATTR,
    OutputPaths,
    ProgressFn,
    WriteResult,
    storage_chunks,
    write_hdf5,
)
from lazystitch.writers._info import describe_output

__all__ = [
    "COMPLETE_ATTR",
    "RUN_ATTR",
    "ChunkCodec",
    "Compression",
    "OutputPaths",
    "ProgressFn",
    "WriteResult",
    "describe_output",
    "storage_chunks",
    "write_hdf5",
]
