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
from ingest.event_format import FormatError
from ingest.ftrace_entry import EntryDecoder, NumpyColumns, comm_column, concat_columns
from ingest.ftrace_entry import numpy_to_arrow, take_columns
from ingest.ringbuffer import ERROR_TEXT, decode_subbuffers
from ingest.source import seekable
from ingest.tracedat_file import Buffer, Layout, read_layout
from ingest.errors import InputError
from ingest.schema import event_batch

#: bytes of sub-buffers read per CPU at a time
WINDOW = 4 << 20
#: rows per yielded batch (one Parquet row group); two batches are in memory at once
BATCH_ROWS = 1 << 19


class _Cpu:
    """One CPU's records read but not yet merged."""

    def __init__(self, stream: CpuStream) -> None:
        self.stream = stream
        self.cpu = stream.data.cpu
        self.windows = stream.windows()
        self.live = True
        self.ts = np.zeros(0, np.int64)
        self.row = np.zeros(0, np.int64)  # row in `cols` of a page event, else -1
        self.cols: NumpyColumns = {}
        self.rows = 0  # page-event rows in `cols`


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
                yield from self._merged(layout, buf, decoder, [_Cpu(s) for s in streams])
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
            raise InputError(self.path, f"{why} (byte {at % c.stream.subbuf} of a sub-buffer "
                             f"inflated from the compressed chunk at offset "
                             f"{c.stream.chunk_at(at)})")
        r.count_lost(self.stats, c.cpu)

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

    def _merged(self, layout: Layout, buf: Buffer, decoder: EntryDecoder,
                cpus: list[_Cpu]) -> Iterator[pa.RecordBatch]:
        total = sum(d.size for d in buf.cpus) or 1
        out = _Batcher(BATCH_ROWS)
        for c in cpus:
            self._refill(c, layout, decoder)
        while True:
            for c in cpus:
                while c.live and len(c.ts) == 0:
                    self._refill(c, layout, decoder)
            if not any(len(c.ts) for c in cpus):
                break
            merged = self._merge_round(cpus)
            self.position = int(self.size * sum(c.stream.consumed for c in cpus) / total)
            if out.rows + merged.rows > out.capacity and out.rows:
                yield self._batch(out.take(), layout, decoder)
            out.add(merged)
        if out.rows:
            yield self._batch(out.take(), layout, decoder)

    def _merge_round(self, cpus: list[_Cpu]) -> _Round:
        """Merge what the CPUs hold as far as possible and drop it from them."""
        lengths = np.array([len(c.ts) for c in cpus], np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ends = starts + lengths
        ts = np.concatenate([c.ts for c in cpus])
        live = np.array([c.live for c in cpus], np.bool_)
        order, reached = merge_order(ts, starts, ends, live)
        is_page = np.concatenate([c.row >= 0 for c in cpus])[order]
        page_order = order[is_page]
        cpu_of = np.searchsorted(starts, page_order, side="right") - 1
        merged = _Round(ts[page_order], np.array([c.cpu for c in cpus], np.int32)[cpu_of])
        for i, c in enumerate(cpus):
            k = int(reached[i] - starts[i])
            used = int(np.count_nonzero(c.row[:k] >= 0))
            c.ts = c.ts[k:]
            c.row = c.row[k:]
            if used:
                # a CPU's page events leave in its own order: they are its first `used` rows
                merged.parts.append((take_columns(c.cols, slice(0, used)),
                                     np.flatnonzero(cpu_of == i)))
                c.row = np.where(c.row >= 0, c.row - used, -1)
                c.cols = take_columns(c.cols, slice(used, None))
                c.rows -= used
        return merged

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


class _Round:
    """The page events one merge round releases: timestamps and CPUs in merged order, and
    per CPU its rows with their positions in that order."""

    def __init__(self, ts: np.ndarray, cpu: np.ndarray) -> None:
        self.ts = ts
        self.cpu = cpu
        self.rows = len(ts)
        self.parts: list[tuple[NumpyColumns, np.ndarray]] = []


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

    def add(self, merged: _Round) -> None:
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
