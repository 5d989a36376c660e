"""Reader for trace-cmd `trace.dat` files, versions 6 and 7 (zlib / zstd compressed too).

The file's structure comes from `tracedat_file.read_layout`; each CPU's ring-buffer data
is read window by window (`cpu_streams.CpuStream`), its sub-buffers walked by the
compiled `ringbuffer.decode_subbuffers`, its kmem records decoded by
`ftrace_entry.EntryDecoder` through the file's own event formats, and the CPUs merged
by timestamp exactly as `trace-cmd report` merges them (`cpu_streams.merge_order`), with
memory bounded by the window size times the CPU count. Timestamps get the file's DATE /
OFFSET / TSC2NSEC adjustments, as `trace-cmd report` applies them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from ingest.base import IngestStats, Reader
from ingest.cpu_streams import CpuStream, merge_order
from ingest.ftrace_entry import EntryDecoder, comm_column
from ingest.ringbuffer import ERROR_TEXT, decode_subbuffers
from ingest.source import seekable
from ingest.tracedat_file import Buffer, Layout, read_layout
from replay.errors import InputError
from replay.schema import event_batch

#: bytes of sub-buffers read per CPU at a time
WINDOW = 4 << 20
#: rows per yielded batch (one Parquet row group)
BATCH_ROWS = 1 << 20

_DICT_COLUMNS = ("event", "gfp_flags")


class _Cpu:
    """One CPU's records read but not yet merged."""

    def __init__(self, stream: CpuStream) -> None:
        self.stream = stream
        self.cpu = stream.data.cpu
        self.windows = stream.windows()
        self.live = True
        self.ts = np.zeros(0, np.int64)
        self.row = np.zeros(0, np.int64)  # row in `table` of a page event, else -1
        self.table: pa.Table | None = None


class TraceDatReader(Reader):
    """trace-cmd trace.dat (file versions 6 and 7; `buffer` selects an instance)."""

    format = "trace.dat"
    options = ("buffer",)

    def __init__(self, path: Path, stats: IngestStats, strict: bool = False,
                 buffer: str | None = None) -> None:
        super().__init__(path, stats, strict)
        self.buffer = buffer

    def events(self) -> Iterator[pa.RecordBatch]:
        with seekable(self.path) as real:
            layout = read_layout(real)
            buf = self._choose_buffer(layout)
            self._describe(layout, buf)
            decoder = EntryDecoder(layout.formats, layout.big_endian)
            fd = os.open(real, os.O_RDONLY)
            try:
                streams = [CpuStream(self.path, fd, layout.file_size, d, buf.page_size,
                                     layout.compression if buf.compressed else None,
                                     layout.big_endian, WINDOW) for d in buf.cpus]
                yield from self._merged(layout, buf, decoder, [_Cpu(s) for s in streams])
            finally:
                os.close(fd)
            if any(s.truncated for s in streams):
                self.stats.truncated = True

    def _choose_buffer(self, layout: Layout) -> Buffer:
        name = self.buffer or ""
        if name not in layout.buffers:
            known = ", ".join(repr(n) if n else "'' (top)" for n in layout.buffers) or "none"
            what = f"buffer {name!r}" if name else "top-instance buffer"
            raise InputError(self.path, f"no {what} in this trace.dat (buffers: {known})")
        return layout.buffers[name]

    def _describe(self, layout: Layout, buf: Buffer) -> None:
        s = self.stats
        s.format_version = str(layout.version)
        s.page_size = buf.page_size
        s.cpus = max(layout.cpus, max((d.cpu + 1 for d in buf.cpus), default=0))
        s.clock = buf.clock or layout.clock
        words = (layout.uname or "").split()
        s.kernel_release = words[2] if len(words) >= 3 else None
        s.extra["trace_dat"] = {
            "uname": layout.uname,
            "trace_cmd_version": layout.tracer_version,
            "compression": layout.compression,
            "buffer": buf.name,
            "buffers": sorted(layout.buffers),
            "ts_offset_ns": layout.ts_offset,
            "tsc2nsec": list(layout.tsc2nsec) if layout.tsc2nsec else None,
        }

    # -- reading and merging --------------------------------------------------------------

    def _refill(self, c: _Cpu, layout: Layout, decoder: EntryDecoder) -> None:
        """Read the next window of CPU `c` (or mark it finished)."""
        try:
            window, file_off = next(c.windows)
        except StopIteration:
            c.live = False
            return
        hp = layout.header_page
        r = decode_subbuffers(window, c.stream.subbuf, hp.commit_size, hp.data_offset,
                              layout.big_endian)
        if r.error.any():
            k = int(np.flatnonzero(r.error)[0])
            at = int(r.error_offset[k])
            why = f"CPU {c.cpu}: {ERROR_TEXT[int(r.error[k])]}"
            if file_off is not None:
                raise InputError(self.path, why, where=f"offset {file_off + at}")
            raise InputError(self.path, f"{why} (byte {at % c.stream.subbuf} of sub-buffer "
                             f"{at // c.stream.subbuf} inflated from {c.stream.where})")
        lost = r.lost[r.missed]
        if len(lost):
            self.stats.lost_events[c.cpu] += int(lost[lost > 0].sum())
            if (lost < 0).any():
                self.stats.lost_unknown.add(c.cpu)
            if not self.stats.lost_events[c.cpu]:
                del self.stats.lost_events[c.cpu]

        def where(i: int) -> str:
            if file_off is None:
                return f"CPU {c.cpu} record in {c.stream.where}"
            return f"offset {file_off + int(r.offset[i])}"

        index, cols = decoder.decode(window, r.offset, r.length, self.stats, where)
        row = np.full(len(r.ts), -1, np.int64)
        base = 0 if c.table is None else c.table.num_rows
        row[index] = np.arange(base, base + len(index))
        c.ts = np.concatenate([c.ts, r.ts])
        c.row = np.concatenate([c.row, row])
        if len(index):
            t = pa.table(cols)
            c.table = t if c.table is None else pa.concat_tables([c.table, t])

    def _merged(self, layout: Layout, buf: Buffer, decoder: EntryDecoder,
                cpus: list[_Cpu]) -> Iterator[pa.RecordBatch]:
        total = sum(d.size for d in buf.cpus) or 1
        out: list[pa.RecordBatch] = []
        rows = 0
        for c in cpus:
            self._refill(c, layout, decoder)
        while True:
            for c in cpus:
                while c.live and len(c.ts) == 0:
                    self._refill(c, layout, decoder)
            if not any(len(c.ts) for c in cpus):
                break
            batch = self._merge_round(layout, decoder, cpus)
            self.position = int(self.size * sum(c.stream.consumed for c in cpus) / total)
            if batch is not None and batch.num_rows:
                out.append(batch)
                rows += batch.num_rows
            if rows >= BATCH_ROWS:
                yield _concat(out)
                out, rows = [], 0
        if out:
            yield _concat(out)

    def _merge_round(self, layout: Layout, decoder: EntryDecoder,
                     cpus: list[_Cpu]) -> pa.RecordBatch | None:
        lengths = np.array([len(c.ts) for c in cpus], np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ends = starts + lengths
        ts = np.concatenate([c.ts for c in cpus])
        live = np.array([c.live for c in cpus], np.bool_)
        order, reached = merge_order(ts, starts, ends, live)
        # page-event rows, in merged order
        table_rows = np.array([0 if c.table is None else c.table.num_rows for c in cpus])
        row_base = np.concatenate([[0], np.cumsum(table_rows)[:-1]])
        row = np.concatenate([np.where(c.row >= 0, c.row + b, -1)
                              for c, b in zip(cpus, row_base)])
        picked = row[order]
        is_page = picked >= 0
        cpu_of = np.searchsorted(starts, order, side="right") - 1
        batch = None
        if is_page.any():
            tables = [_redict(c.table, decoder) for c in cpus if c.table is not None]
            taken = pa.concat_tables(tables).take(pa.array(picked[is_page]))
            cols = {name: taken.column(name) for name in taken.column_names}
            cols["ts_ns"] = _timestamps(ts[order[is_page]], layout)
            cpu_ids = np.array([c.cpu for c in cpus], np.int32)
            cols["cpu"] = cpu_ids[cpu_of[is_page]]
            cols["comm"] = comm_column(taken.column("pid").to_numpy(), layout.cmdlines)
            batch = event_batch(cols, taken.num_rows)
        for i, c in enumerate(cpus):
            k = int(reached[i] - starts[i])
            used_rows = int((c.row[:k] >= 0).sum())
            c.ts = c.ts[k:]
            c.row = c.row[k:] - used_rows
            c.row[c.row < -1] = -1
            if c.table is not None:
                c.table = c.table.slice(used_rows) if used_rows < c.table.num_rows else None
        return batch


def _redict(table: pa.Table, decoder: EntryDecoder) -> pa.Table:
    """`table` with its dictionary columns on the decoder's latest (grown) dictionaries."""
    dicts = {"event": decoder.event_names, "gfp_flags": decoder.gfp_names()}
    for name in _DICT_COLUMNS:
        i = table.schema.get_field_index(name)
        chunks = [pa.DictionaryArray.from_arrays(ch.indices, dicts[name])
                  for ch in table.column(i).chunks]
        table = table.set_column(i, name, pa.chunked_array(chunks, chunks[0].type)
                                 if chunks else table.column(i))
    return table


def _timestamps(raw: np.ndarray, layout: Layout) -> np.ndarray:
    """Raw ring-buffer stamps as `trace-cmd report` shows them (TSC2NSEC, DATE, OFFSET)."""
    ts = raw.view(np.uint64)
    if layout.tsc2nsec:
        mult, shift, _ = layout.tsc2nsec
        # kernel mul_u64_u32_shr: 64x32 multiply, shifted, without overflowing
        lo, hi = ts & np.uint64(0xFFFFFFFF), ts >> np.uint64(32)
        ts = ((lo * np.uint64(mult)) >> np.uint64(shift)) + (
            (hi * np.uint64(mult)) << np.uint64(32 - shift))
    return (ts + np.uint64(layout.ts_offset & 0xFFFFFFFFFFFFFFFF)).view(np.int64)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    table = pa.Table.from_batches(batches).unify_dictionaries().combine_chunks()
    return table.to_batches(max_chunksize=table.num_rows)[0]
