"""Merging per-CPU ring-buffer streams into one stream in time order, with bounded memory,
and the one rule for a damaged sub-buffer in a CPU's stream.

Ring-buffer traces (trace.dat flyrecord data, `trace_pipe_raw` spools) hold one stream
per CPU, each (almost) in time order: nested events can step back a little, so the
merge must not sort within a CPU. It does what libtraceevent / trace-cmd do
(`ingest.cpu_streams.merge_order`): repeatedly take the record with the smallest
timestamp among the heads of the CPU streams (ties go to the lower stream index), never
reordering a CPU's own records (docs/formats.md §2). Only each stream's pending chunk
is held in memory.

- `merge_rounds(runs)` is the merge, for every reader: `runs` (`PendingRun`, in CPU
  order) hold what each stream has read but not merged; each round merges as far as the
  pending records allow and hands back what it took (`Round`). The trace.dat reader
  merges every record (so that page events come out in `trace-cmd report`'s order) and
  keeps its columns in numpy; `merge_by_time` drives it over Arrow chunks.
- `merge_by_time(streams)`: `streams` is a sequence (in CPU order) of iterables of
  `(ts, batch)` chunks, `ts` an int64 numpy array aligned with the Arrow record batch;
  yields record batches (of the streams' schema) in merged order (`replay record`'s
  spools).
- `damaged_subbuffers(...)`: a sub-buffer the walk finds corrupt is an `InputError` with
  `strict`; otherwise it is counted malformed (the first few quoted), the records decoded
  before the fault are kept and the CPU's stream goes on with its next sub-buffer (each
  sub-buffer carries its own base time), as malformed lines of a text trace are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.base import IngestStats
from ingest.cpu_streams import merge_order
from ingest.errors import InputError
from ingest.ringbuffer import ERROR_TEXT, SubbufRecords


class PendingRun(ABC):
    """One stream's records read but not yet merged: their timestamps in `ts` and, kept by
    the subclass beside them, whatever else the reader needs of them."""

    def __init__(self) -> None:
        self.ts = np.zeros(0, np.int64)
        #: the stream may have records not read yet
        self.more = True

    @abstractmethod
    def read(self) -> bool:
        """Read the stream's next chunk into the (used up) pending records; False at its end."""

    @abstractmethod
    def consume(self, k: int) -> Any:
        """Remove the first `k` pending records (k > 0) and return them."""

    def refill(self) -> None:
        """Read until there are pending records or the stream ends."""
        while self.more and len(self.ts) == 0:
            self.more = self.read()


@dataclass
class Round:
    """The records one merge round took: per run what its `consume` returned (None when it
    gave none), and per merged record its timestamp, its run and its position in the
    concatenation of the runs' returned records."""

    heads: list[Any]
    ts: np.ndarray
    run: np.ndarray
    index: np.ndarray


def merge_rounds(runs: Sequence[PendingRun]) -> Iterator[Round]:
    """Merge the runs by time, round by round (see module doc)."""
    while True:
        for r in runs:
            r.refill()
        lengths = np.array([len(r.ts) for r in runs], np.int64)
        if not lengths.any():
            return
        ends = np.cumsum(lengths)
        starts = ends - lengths
        ts = np.concatenate([r.ts for r in runs])
        more = np.array([r.more for r in runs], np.bool_)
        # every run that may grow holds records now, so the round takes at least one
        out, reached = merge_order(ts, starts, ends, more)
        taken = reached - starts
        heads = [r.consume(int(k)) if k else None for r, k in zip(runs, taken)]
        run = np.searchsorted(ends, out, side="right")
        # `out` indexes the concatenation of whole runs; re-index into the taken heads
        left = lengths - taken
        shift = np.cumsum(left) - left
        yield Round(heads, ts[out], run, out - shift[run])


class _ArrowRun(PendingRun):
    """A stream of `(ts, batch)` chunks; its pending rows are the rest of one chunk."""

    def __init__(self, chunks: Iterable[tuple[np.ndarray, pa.RecordBatch]]) -> None:
        super().__init__()
        self.chunks = iter(chunks)
        self.batch: pa.RecordBatch | None = None

    def read(self) -> bool:
        try:
            ts, self.batch = next(self.chunks)
        except StopIteration:
            return False
        self.ts = np.asarray(ts, np.int64)
        return True

    def consume(self, k: int) -> pa.RecordBatch:
        head = self.batch.slice(0, k)
        self.ts = self.ts[k:]
        self.batch = self.batch.slice(k)
        return head


def merge_by_time(
    streams: Sequence[Iterable[tuple[np.ndarray, pa.RecordBatch]]],
) -> Iterator[pa.RecordBatch]:
    """Merge per-CPU chunk streams by time (see module doc)."""
    for r in merge_rounds([_ArrowRun(s) for s in streams]):
        heads = [h for h in r.heads if h is not None]
        table = pa.Table.from_batches(heads, schema=heads[0].schema)
        yield from table.take(pa.array(r.index)).to_batches()


def damaged_subbuffers(
    path: str | Path,
    cpu: int,
    rec: SubbufRecords,
    where: Callable[[int], str],
    stats: IngestStats,
    strict: bool,
) -> None:
    """Apply the rule for corrupt sub-buffers (see module doc) to one decoded chunk of CPU
    `cpu` of `path`; `where(byte)` names a byte of the chunk for the message."""
    bad = np.flatnonzero(rec.error)
    found = ((where(int(rec.error_offset[s])), f"CPU {cpu}: {ERROR_TEXT[int(rec.error[s])]}")
             for s in bad)
    if strict and len(bad):
        at, why = next(found)
        raise InputError(path, why, where=at)
    stats.add_malformed_many(len(bad), found)
