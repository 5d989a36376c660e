"""Reader for trace-cmd `trace.dat` files, versions 6 and 7 (zlib / zstd compressed too).

The file's structure comes from `tracedat_file.read_layout`; each CPU's ring-buffer data
is read window by window (`cpu_streams.CpuStream`), its sub-buffers walked by the
compiled `ringbuffer.decode_subbuffers`, its kmem records decoded by
`ftrace_entry.EntryDecoder` through the file's own event formats, and the CPUs merged
by timestamp exactly as `trace-cmd report` merges them (`cpu_merge.merge_rounds`, over
every record, not only page events), with memory bounded by the window size times the CPU
count. A corrupt sub-buffer follows `cpu_merge.damaged_subbuffers` (an error with
`strict`, else counted malformed). Timestamps get the file's DATE / OFFSET / TSC2NSEC
adjustments, as `trace-cmd report` applies them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ingest.base import IngestStats, Reader
from ingest.cpu_merge import PendingRun, Round, damaged_subbuffers, merge_rounds
from ingest.cpu_streams import CpuStream
from ingest.event_format import FormatError
from ingest.ftrace_entry import EntryDecoder, NumpyColumns, comm_column, concat_columns
from ingest.ftrace_entry import numpy_to_arrow, take_columns
from ingest.ringbuffer import decode_subbuffers
from ingest.source import seekable
from ingest.tracedat_file import Buffer, Layout, read_layout
from ingest.errors import InputError
from ingest.schema import event_batch

#: bytes of sub-buffers read per CPU at a time
WINDOW = 4 << 20
#: rows per yielded batch (one Parquet row group); two batches are in memory at once
BATCH_ROWS = 1 << 19


class _Cpu(PendingRun):
    """One CPU's records read but not yet merged: every record's time, and the columns of
    its page events."""

    def __init__(self, stream: CpuStream, read: Callable[[_Cpu], bool]) -> None:
        super().__init__()
        self.stream = stream
        self.cpu = stream.data.cpu
        self.windows = stream.windows()
        self._read = read
        self.row = np.zeros(0, np.int64)  # row in `cols` of a page event, else -1
        self.cols: NumpyColumns = {}
        self.rows = 0  # page-event rows in `cols`

    def read(self) -> bool:
        return self._read(self)

    def consume(self, k: int) -> _Head:
        head = _Head(self.row[:k], {}, int(np.count_nonzero(self.row[:k] >= 0)))
        self.ts = self.ts[k:]
        self.row = self.row[k:]
        if head.used:
            # a CPU's page events leave in its own order: they are its first `used` rows
            head.cols = take_columns(self.cols, slice(0, head.used))
            self.row = np.where(self.row >= 0, self.row - head.used, -1)
            self.cols = take_columns(self.cols, slice(head.used, None))
            self.rows -= head.used
        return head


@dataclass
class _Head:
    """The records a merge round took from one CPU: `row` >= 0 marks its page events, whose
    columns are `cols` (`used` rows, in the CPU's order)."""

    row: np.ndarray
    cols: NumpyColumns
    used: int


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
            try:
                decoder = EntryDecoder(layout.formats, layout.big_endian)
            except FormatError as e:  # a damaged format the layout could still split
                raise InputError(self.path, f"event format: {e}") from None
            fd = os.open(real, os.O_RDONLY)
            try:
                streams = [CpuStream(self.path, fd, layout.file_size, d, buf.page_size,
                                     layout.compression if buf.compressed else None,
                                     layout.big_endian, WINDOW) for d in buf.cpus]
                yield from self._merged(layout, buf, decoder, streams)
            finally:
                os.close(fd)
            if layout.truncated or any(s.truncated for s in streams):
                self.stats.truncated = True

    def _choose_buffer(self, layout: Layout) -> Buffer:
        name = self.buffer or ""
        if name not in layout.buffers:
            known = ", ".join(repr(n) if n else "'' (top)" for n in layout.buffers) or "none"
            what = f"buffer {name!r}" if name else "top-instance buffer"
            raise InputError(self.path, f"no {what} in this trace.dat (buffers: {known})")
        buf = layout.buffers[name]
        others = [n for n, b in layout.buffers.items() if n != name and b.cpus]
        if not any(d.size for d in buf.cpus) and others:
            what = f"buffer {name!r}" if name else "the top-instance buffer"
            raise InputError(self.path, f"{what} holds no data; use --buffer with one of: "
                             + ", ".join(others))
        return buf

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

    def _read_window(self, c: _Cpu, layout: Layout, decoder: EntryDecoder) -> bool:
        """Read the next window of CPU `c` into its pending records; False at its end."""
        try:
            window, file_off = next(c.windows)
        except StopIteration:
            return False
        hp = layout.header_page
        r = decode_subbuffers(window, c.stream.subbuf, hp.commit_size, hp.data_offset,
                              layout.big_endian)
        r.count_lost(self.stats, c.cpu)

        def at(byte: int) -> str:
            if file_off is None:
                return (f"byte {byte % c.stream.subbuf} of a sub-buffer (inflated from the "
                        f"compressed chunk at offset {c.stream.chunk_at(byte)})")
            return f"offset {file_off + byte}"

        damaged_subbuffers(self.path, c.cpu, r, at, self.stats, self.strict)

        def where(i: int) -> str:
            if file_off is None:
                return (f"CPU {c.cpu} record inflated from the compressed chunk at offset "
                        f"{c.stream.chunk_at(int(r.offset[i]))}")
            return f"offset {file_off + int(r.offset[i])}"

        index, cols = decoder.decode_numpy(window, r.offset, r.length, self.stats, where)
        row = np.full(len(r.ts), -1, np.int64)
        row[index] = np.arange(c.rows, c.rows + len(index))
        c.ts = np.concatenate([c.ts, r.ts])
        c.row = np.concatenate([c.row, row])
        if len(index):
            c.cols = concat_columns([(c.cols, c.rows), (cols, len(index))])
            c.rows += len(index)
        return True

    def _merged(self, layout: Layout, buf: Buffer, decoder: EntryDecoder,
                streams: list[CpuStream]) -> Iterator[pa.RecordBatch]:
        total = sum(d.size for d in buf.cpus) or 1
        cpus = [_Cpu(s, lambda c: self._read_window(c, layout, decoder)) for s in streams]
        numbers = np.array([c.cpu for c in cpus], np.int32)
        out = _Batcher(BATCH_ROWS)
        for r in merge_rounds(cpus):
            merged = _page_events(r, numbers)
            self.position = int(self.size * sum(c.stream.consumed for c in cpus) / total)
            if out.rows + merged.rows > out.capacity and out.rows:
                yield self._batch(out.take(), layout, decoder)
            out.add(merged)
        if out.rows:
            yield self._batch(out.take(), layout, decoder)

    def _batch(self, taken: tuple[NumpyColumns, int], layout: Layout,
               decoder: EntryDecoder) -> pa.RecordBatch:
        cols, n = taken
        ts = cols.pop("ts_ns")[0]
        cpu = cols.pop("cpu")[0]
        arrays = decoder.to_arrow(cols)
        arrays["ts_ns"] = numpy_to_arrow(_timestamps(ts, layout))
        arrays["cpu"] = numpy_to_arrow(cpu)
        arrays["comm"] = comm_column(cols["pid"][0], layout.cmdlines)
        return event_batch(arrays, n)


class _PageEvents:
    """The page events one merge round releases: timestamps and CPUs in merged order, and
    per CPU its rows with their positions in that order."""

    def __init__(self, ts: np.ndarray, cpu: np.ndarray) -> None:
        self.ts = ts
        self.cpu = cpu
        self.rows = len(ts)
        self.parts: list[tuple[NumpyColumns, np.ndarray]] = []


def _page_events(r: Round, cpus: np.ndarray) -> _PageEvents:
    """The page events of a merge round (`cpus`: each run's CPU number)."""
    is_page = np.concatenate([h.row for h in r.heads if h is not None])[r.index] >= 0
    run = r.run[is_page]
    merged = _PageEvents(r.ts[is_page], cpus[run])
    for i, h in enumerate(r.heads):
        if h is not None and h.used:
            merged.parts.append((h.cols, np.flatnonzero(run == i)))
    return merged


class _Batcher:
    """Merged rows scattered into preallocated columns until a batch is full.

    Filling arrays in place (rather than concatenating parts) keeps one batch's worth of
    memory for the batch being filled and one for the batch being written. The caller
    takes the batch before adding rows that do not fit.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows = 0
        self.cols: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._size = capacity

    def _column(self, name: str, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        if name not in self.cols:  # rows before this column appeared are null
            self.cols[name] = (np.zeros(self._size, dtype), np.zeros(self._size, bool))
        return self.cols[name]

    def add(self, merged: _PageEvents) -> None:
        n = merged.rows
        if self.rows == 0:
            self._size = max(self.capacity, n)  # a round larger than a batch is one batch
            self.cols = {}
        start, end = self.rows, self.rows + n
        for name, values in (("ts_ns", merged.ts), ("cpu", merged.cpu)):
            v, ok = self._column(name, values.dtype)
            v[start:end] = values
            ok[start:end] = True
        for cols, pos in merged.parts:
            at = pos + start
            for name, (values, valid) in cols.items():
                v, ok = self._column(name, values.dtype)
                v[at] = values
                ok[at] = True if valid is None else valid
            for name, (_, ok) in self.cols.items():
                if name not in cols and name not in ("ts_ns", "cpu"):
                    ok[at] = False
        self.rows = end

    def take(self) -> tuple[NumpyColumns, int]:
        """The filled rows; the next rows go to fresh arrays."""
        n = self.rows
        out = {name: (v[:n], None if ok[:n].all() else ok[:n])
               for name, (v, ok) in self.cols.items()}
        self.cols, self.rows = {}, 0
        return out, n


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
