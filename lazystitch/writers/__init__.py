"""Writers: store a lazy mosaic and its pyramid (plain HDF5 or BigDataViewer), exactly once,
resumably."""

from lazystitch.writers._codec import ChunkCodec, Compression
from lazystitch.writers._files import COMPLETE_ATTR, RUN_ATTR, OutputPaths
from lazystitch.writers._info import describe_output
from lazystitch.writers._plan import level_count, parse_levels, storage_chunks
from lazystitch.writers._shards import ShardError, WriteMode
from lazystitch.writers._target import check_chunk_count, check_output, check_output_target
from lazystitch.writers._tasks import block_mean
from lazystitch.writers._write import (
    FORMATS,
    ProgressFn,
    WriteResult,
    output_format,
    plan_arrays,
    write_hdf5,
)

__all__ = [
    "COMPLETE_ATTR",
    "FORMATS",
    "RUN_ATTR",
    "ChunkCodec",
    "Compression",
    "OutputPaths",
    "ProgressFn",
    "ShardError",
    "WriteMode",
    "WriteResult",
    "block_mean",
    "check_chunk_count",
    "check_output",
    "check_output_target",
    "describe_output",
    "level_count",
    "output_format",
    "parse_levels",
    "plan_arrays",
    "storage_chunks",
    "write_hdf5",
]
