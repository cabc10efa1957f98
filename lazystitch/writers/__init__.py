"""Writers: store a lazy mosaic in a chunked HDF5 dataset, exactly once, resumably."""

from lazystitch.writers._codec import ChunkCodec, Compression
from lazystitch.writers._files import COMPLETE_ATTR, RUN_ATTR, OutputPaths
from lazystitch.writers._hdf5 import (
    ProgressFn,
    WriteResult,
    storage_chunks,
    write_hdf5,
)
from lazystitch.writers._info import describe_output
from lazystitch.writers._shards import ShardError, WriteMode
from lazystitch.writers._target import check_chunk_count, check_output, check_output_target

__all__ = [
    "COMPLETE_ATTR",
    "RUN_ATTR",
    "ChunkCodec",
    "Compression",
    "OutputPaths",
    "ProgressFn",
    "ShardError",
    "WriteMode",
    "WriteResult",
    "check_chunk_count",
    "check_output",
    "check_output_target",
    "describe_output",
    "storage_chunks",
    "write_hdf5",
]
