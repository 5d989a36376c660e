"""Merging per-CPU event streams into one stream in time order, with bounded memory.

Ring-buffer traces (trace.dat flyrecord data, `trace_pipe_raw` spools) hold one stream
per CPU, each (almost) in time order: nested events can step back a little, so the
merge must not sort within a CPU. It does what libtraceevent / trace-cmd do
(`ingest.cpu_streams.merge_order`): repeatedly take the record with the smallest
timestamp among the heads of the CPU streams (ties go to the lower stream index), never
reordering a CPU's own records (docs/formats.md §2). This drives it over streams of Arrow
chunks; only the current chunk of each stream is held in memory.

API: `merge_by_time(streams)`: `streams` is a sequence (in CPU order) of iterables of
`(ts, batch)` chunks, `ts` an int64 numpy array aligned with the Arrow record batch;
yields record batches (of the streams' schema) in merged order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa

from ingest.cpu_streams import merge_order


class _Stream:
    """One stream's pending chunk: the rows not yet merged."""

    def __init__(self, chunks: Iterable[tuple[np.ndarray, pa.RecordBatch]]) -> None:
        self.chunks = iter(chunks)
        self.more = True
        self.ts = np.zeros(0, np.int64)
        self.batch: pa.RecordBatch | None = None

    def refill(self) -> None:
        """Load the next non-empty chunk if the pending one is used up."""
        while self.more and len(self.ts) == 0:
            try:
                ts, batch = next(self.chunks)
            except StopIteration:
                self.more = False
                return
            self.ts = np.asarray(ts, np.int64)
            self.batch = batch

    def consume(self, k: int) -> pa.RecordBatch:
        """The first `k` pending rows, removed from the pending chunk."""
        head = self.batch.slice(0, k)
        self.ts = self.ts[k:]
        self.batch = self.batch.slice(k)
        return head


def merge_by_time(
    streams: Sequence[Iterable[tuple[np.ndarray, pa.RecordBatch]]],
) -> Iterator[pa.RecordBatch]:
    """Merge per-CPU chunk streams by time (see module doc)."""
    pending = [_Stream(s) for s in streams]
    while True:
        for s in pending:
            s.refill()
        live = [s for s in pending if len(s.ts) or s.more]
        if not live:
            return
        lengths = np.array([len(s.ts) for s in live], np.int64)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        ts = np.concatenate([s.ts for s in live])
        more = np.array([s.more for s in live], np.bool_)
        out, pos = merge_order(ts, starts, ends, more)
        if len(out) == 0:
            continue  # every stream's chunk was empty; refill
        heads = [s.consume(int(p - a)) for s, p, a in zip(live, pos, starts)]
        table = pa.Table.from_batches([h for h in heads if h.num_rows], schema=heads[0].schema)
        # `out` indexes the concatenation of whole chunks; re-index into the consumed heads.
        consumed = pos - starts
        shift = np.cumsum(lengths - consumed) - (lengths - consumed)
        stream_of = np.searchsorted(ends, out, side="right")
        index = out - shift[stream_of]
        for batch in table.take(pa.array(index)).to_batches():
            yield batch
