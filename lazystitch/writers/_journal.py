"""The journal of durably written chunks that makes a run resumable."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ChunkRecord", "Journal", "read_journal"]

Unit = tuple[int, tuple[int, ...]]  # (array position in the run, chunk index)


@dataclass(frozen=True)
class ChunkRecord:
    """One durably written unit: (array, chunk index), byte count, CRC-32 and filter mask."""

    unit: Unit
    nbytes: int
    crc32: int
    filter_mask: int

    def matches(self, data: bytes, filter_mask: int) -> bool:
        return (
            len(data) == self.nbytes
            and zlib.crc32(data) == self.crc32
            and int(filter_mask) == self.filter_mask
        )

    def line(self) -> str:
        array, index = self.unit
        return (
            f"{array};{','.join(map(str, index))};{self.nbytes};{self.crc32};{self.filter_mask}\n"
        )


class Journal:
    """An append-only text file: a JSON header line, then one line per durable unit.

    A chunk is appended only after its bytes and the HDF5 metadata that points at them were
    flushed and fsync'ed, and the journal itself is fsync'ed after every batch; a torn last
    line (a kill mid-append) is ignored when reading.
    """

    def __init__(self, path: Path, header: dict) -> None:
        self.path = path
        self._fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._fh.write(json.dumps(header, sort_keys=True) + "\n")
        self.sync()

    def append(self, records: Iterable[ChunkRecord]) -> None:
        self._fh.write("".join(r.line() for r in records))
        self.sync()

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def read_journal(path: Path) -> tuple[dict, dict[Unit, ChunkRecord]]:
    """Read a journal: its header and the records of complete lines (last one wins)."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if len(lines) < 2:  # no complete header line
        raise ValueError(f"journal {path} has no header")
    header = json.loads(lines[0])
    records: dict[Unit, ChunkRecord] = {}
    for line in lines[1:-1]:  # lines[-1] is '' or a torn line
        try:
            array, idx, nbytes, crc, mask = line.split(";")
            unit = (int(array), tuple(int(i) for i in idx.split(",")))
            rec = ChunkRecord(unit, int(nbytes), int(crc), int(mask))
        except ValueError:
            continue
        records[rec.unit] = rec
    return header, records
