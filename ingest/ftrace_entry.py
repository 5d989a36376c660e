"""Vectorized decoding of binary ftrace entries into the event schema's columns.

An ftrace entry is the payload of a ring-buffer data record (FORMATS.md §1-2): the common
fields (`common_type`, `common_flags`, `common_pid`, ...) then the event's own fields, at
the offsets its `format` text gives. trace.dat flyrecord data, perf.data RAW samples and
`trace_pipe_raw` pages all carry such entries; this module turns many of them at once into
columns, with numba gathers per field and no Python object per event.

API (stable; the trace.dat, perf.data and `replay record` readers use it):

    decoder = EntryDecoder(formats, big_endian=False)   # every event format of the trace
    index, columns = decoder.decode(buf, offset, length, stats, where=None)

- `buf`: uint8 array; `offset`/`length`: int arrays, one payload per record.
- `index`: positions (into `offset`) of the kmem page-event records, in input order.
- `columns`: dict for `replay.schema.event_batch` with `pid`, `context`, `event`, `pfn`,
  `page`, `order`, `gfp`, `gfp_flags`, `migratetype` and the extfrag / zone_locked extras,
  each aligned with `index` (callers add `ts_ns`, `cpu`, `comm`). `event` and `gfp_flags`
  are dictionary arrays whose indices stay valid across calls of one decoder: its
  dictionaries (`event_names`, `gfp_names()`) only grow.
- `decode_numpy(...)` is the same with numpy columns: name -> (values, valid mask or
  None), `event` / `gfp_flags` as int32 dictionary codes (-1 = null); only columns some
  record has are present. `to_arrow(columns)` converts them (`numpy_to_arrow` builds Arrow
  arrays from numpy without importing pandas).
- Records of other events are counted into `stats.skipped` by event name ("" for an id
  no format names); page-event records too short for their fields into
  `stats.malformed` (quoted with `where(i)`, default "record i").
- `comm_column(pids, comms)`: pid -> comm as libtraceevent names them (`<idle>` for pid 0,
  `<...>` when the pid is not in the saved cmdlines), dictionary-encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numba
import numpy as np
import pyarrow as pa

from ingest.base import IngestStats
from ingest.event_format import EventFormat, Field, FlagTable, flag_table
from replay.schema import CONTEXT_BH_OFF, CONTEXT_HARDIRQ, CONTEXT_IRQS_OFF, CONTEXT_NMI
from replay.schema import CONTEXT_SOFTIRQ, READER_EVENTS, canonical_event

#: TRACE_FLAG_* bits of common_flags kept as `context` (kernel/trace/trace.h)
CONTEXT_MASK = CONTEXT_IRQS_OFF | CONTEXT_HARDIRQ | CONTEXT_SOFTIRQ | CONTEXT_NMI | CONTEXT_BH_OFF

#: numpy columns: name -> (values, valid mask or None when all are valid)
NumpyColumns = dict[str, tuple[np.ndarray, "np.ndarray | None"]]

#: event fields that become small-integer schema columns, when the format has them
INT_FIELDS = ("order", "migratetype", "alloc_order", "fallback_order", "alloc_migratetype",
              "fallback_migratetype", "change_ownership", "percpu_refill")


#: numpy dtype of each numeric schema column
_DTYPES = {f.name: np.dtype(str(f.type)) for f in READER_EVENTS
           if pa.types.is_integer(f.type)}


@numba.njit(cache=True)
def _gather(buf, offs, field_off, size, big, signed, out):
    """out[i] = the `size`-byte integer at buf[offs[i] + field_off] (as int64 bits)."""
    for i in range(len(offs)):
        p = offs[i] + field_off
        v = np.uint64(0)
        if big:
            for k in range(size):
                v = (v << np.uint64(8)) | np.uint64(buf[p + k])
        else:
            for k in range(size - 1, -1, -1):
                v = (v << np.uint64(8)) | np.uint64(buf[p + k])
        if signed and size < 8:
            sign = np.uint64(1) << np.uint64(8 * size - 1)
            if v & sign:
                v |= ~((sign << np.uint64(1)) - np.uint64(1))
        out[i] = np.int64(v)


def read_field(buf: np.ndarray, offs: np.ndarray, f: Field, big_endian: bool) -> np.ndarray:
    """The integer field `f` of each record starting at `offs` (int64; uint64 bits kept)."""
    out = np.empty(len(offs), np.int64)
    if len(offs):
        _gather(buf, offs.astype(np.int64, copy=False), f.offset, f.size, big_endian,
                f.signed, out)
    return out


class _PageEvent:
    """One kmem page event's format prepared for decoding."""

    def __init__(self, fmt: EventFormat, canonical: str) -> None:
        self.fmt = fmt
        self.canonical = canonical
        self.gfp_field = fmt.field("gfp_flags")
        self.gfp_table: FlagTable | None = flag_table(fmt.print_fmt) if self.gfp_field else None
        used = [f for f in fmt.fields.values() if f.dynamic is None]
        self.needed = max((f.offset + f.size for f in used), default=0)
        # gfp values seen so far (sorted) and their gfp_flags dictionary codes
        self.gfp_values = np.zeros(0, np.uint64)
        self.gfp_codes = np.zeros(0, np.int32)


class EntryDecoder:
    """Decodes ftrace entries of one trace through that trace's own event formats."""

    def __init__(self, formats: Iterable[EventFormat], big_endian: bool = False) -> None:
        self.big = big_endian
        self.names: dict[int, str] = {}
        self.page: list[_PageEvent] = []
        self.code = np.full(1 << 16, -1, np.int16)  # event id -> index in self.page
        common = None
        for fmt in formats:
            self.names[fmt.id] = fmt.name
            canonical = canonical_event(fmt.name)
            if canonical is not None and fmt.system in ("kmem", "") and 0 <= fmt.id < 1 << 16:
                self.code[fmt.id] = len(self.page)
                self.page.append(_PageEvent(fmt, canonical))
                common = common or fmt
        if common is None:
            self.common_type = self.common_flags = self.common_pid = None
        else:
            self.common_type = common.field("common_type")
            self.common_flags = common.field("common_flags")
            self.common_pid = common.field("common_pid")
        self.event_names = strings_to_arrow(sorted({p.canonical for p in self.page}))
        self._event_code = {name: i for i, name in enumerate(self.event_names.to_pylist())}
        self._gfp_dict: dict[str, int] = {}

    def gfp_names(self) -> pa.Array:
        """The dictionary of every `gfp_flags` column returned so far (it only grows)."""
        return strings_to_arrow(self._gfp_dict)

    def decode(
        self,
        buf: np.ndarray,
        offset: np.ndarray,
        length: np.ndarray,
        stats: IngestStats,
        where: Callable[[int], str] | None = None,
    ) -> tuple[np.ndarray, dict[str, pa.Array]]:
        """Columns of the page-event records among the given ones (see module doc)."""
        index, cols = self.decode_numpy(buf, offset, length, stats, where)
        return index, self.to_arrow(cols)

    def decode_numpy(
        self,
        buf: np.ndarray,
        offset: np.ndarray,
        length: np.ndarray,
        stats: IngestStats,
        where: Callable[[int], str] | None = None,
    ) -> tuple[np.ndarray, NumpyColumns]:
        """Like `decode`, with numpy columns (see module doc)."""
        offset = np.asarray(offset, np.int64)
        length = np.asarray(length, np.int64)
        where = where or (lambda i: f"record {i}")
        if self.common_type is None:
            ids = self._ids_without_page_formats(buf, offset, length)
            self._count_skipped(ids, np.ones(len(ids), bool), stats)
            return np.zeros(0, np.int64), {}
        ct = self.common_type
        short = length < ct.offset + ct.size
        ids = read_field(buf, np.where(short, 0, offset), ct, self.big) & 0xFFFF
        ids[short] = -1
        code = np.where(short, -1, self.code[np.where(short, 0, ids)])
        is_page = code >= 0
        self._count_skipped(ids, ~is_page, stats)
        index = np.flatnonzero(is_page)
        code = code[index]
        offs = offset[index]
        lens = length[index]
        needed = np.array([p.needed for p in self.page], np.int64)[code]
        bad = lens < needed
        if bad.any():
            for i in np.flatnonzero(bad)[:5]:
                p = self.page[code[i]]
                stats.add_malformed(where(int(index[i])), f"{p.fmt.name} record of {lens[i]} "
                                    f"bytes, its format needs {p.needed}")
            stats.malformed += int(bad.sum()) - min(int(bad.sum()), 5)
            keep = ~bad
            index, code, offs = index[keep], code[keep], offs[keep]
        return index, self._columns(buf, code, offs)

    def _ids_without_page_formats(self, buf, offset, length) -> np.ndarray:
        ok = length >= 2
        out = np.full(len(offset), -1, np.int64)
        f = Field("common_type", "unsigned short", 0, 2, False)
        out[ok] = read_field(buf, offset[ok], f, self.big)
        return out

    def _count_skipped(self, ids: np.ndarray, mask: np.ndarray, stats: IngestStats) -> None:
        other = ids[mask]
        if not len(other):
            return
        uniq, counts = np.unique(other, return_counts=True)
        for i, c in zip(uniq.tolist(), counts.tolist()):
            stats.skipped[self.names.get(i, "")] += c

    def _columns(self, buf: np.ndarray, code: np.ndarray, offs: np.ndarray) -> NumpyColumns:
        n = len(offs)
        cols: NumpyColumns = {}
        cols["pid"] = (read_field(buf, offs, self.common_pid, self.big).astype(np.int32), None)
        if self.common_flags is not None:
            flags = read_field(buf, offs, self.common_flags, self.big)
            cols["context"] = ((flags & CONTEXT_MASK).astype(np.uint8), None)
        event_idx = np.empty(n, np.int32)
        for k, p in enumerate(self.page):
            sel = np.flatnonzero(code == k) if len(self.page) > 1 else np.arange(n)
            if not len(sel):
                continue
            o = offs[sel]
            event_idx[sel] = self._event_code[p.canonical]
            fmt = p.fmt

            def put(col: str, values: np.ndarray, valid: np.ndarray | None = None) -> None:
                if col not in cols:
                    dtype = np.int32 if col == "gfp_flags" else _DTYPES[col]
                    cols[col] = (np.zeros(n, dtype), np.zeros(n, bool))
                v, ok = cols[col]
                v[sel] = values
                ok[sel] = True if valid is None else valid

            if (f := fmt.field("pfn")) is not None:
                v = read_field(buf, o, f, self.big)
                # a failed allocation stores pfn -1 (4.1+, a26c2565e1c0)
                all_ones = -1 if f.size == 8 else (1 << (8 * f.size)) - 1
                put("pfn", v, (v != -1) & (v != all_ones))
            elif (f := fmt.field("page")) is not None:
                v = read_field(buf, o, f, self.big)  # before 4.1: struct page *, NULL = failed
                put("page", v.view(np.uint64), v != 0)
            order = None
            for name in INT_FIELDS:
                if (f := fmt.field(name)) is not None:
                    v = read_field(buf, o, f, self.big)
                    order = v if name == "order" else order
                    put(name, v)
            if order is None and p.canonical == "mm_page_free_batched":
                put("order", np.zeros(len(sel), np.int64))  # order 0, printed as "order=0"
            if p.canonical == "mm_page_alloc_zone_locked" and fmt.field("percpu_refill") is None:
                # before 5.19 (10e0f7530205) the print fmt computed it as order == 0
                put("percpu_refill", (order == 0) if order is not None else 0)
            if p.gfp_field is not None:
                g = read_field(buf, o, p.gfp_field, self.big).view(np.uint64)
                if p.gfp_field.size < 8:
                    g = g & np.uint64((1 << (8 * p.gfp_field.size)) - 1)
                put("gfp", g)
                if p.gfp_table is not None:
                    put("gfp_flags", self._gfp_codes(p, g))
        cols["event"] = (event_idx, None)
        return cols

    def _gfp_codes(self, p: _PageEvent, g: np.ndarray) -> np.ndarray:
        """Dictionary codes of the rendered gfp values; each new value is rendered once."""
        pos = np.searchsorted(p.gfp_values, g)
        hit = pos < len(p.gfp_values)
        hit[hit] = p.gfp_values[pos[hit]] == g[hit]
        if not hit.all():
            new = np.unique(g[~hit])
            codes = [self._gfp_dict.setdefault(p.gfp_table.render(int(v)), len(self._gfp_dict))
                     for v in new.tolist()]
            values = np.concatenate([p.gfp_values, new])
            order = np.argsort(values, kind="stable")
            p.gfp_values = values[order]
            p.gfp_codes = np.concatenate([p.gfp_codes, np.array(codes, np.int32)])[order]
            pos = np.searchsorted(p.gfp_values, g)
        return p.gfp_codes[pos]

    def to_arrow(self, cols: NumpyColumns) -> dict[str, pa.Array]:
        """Arrow arrays (schema types, dictionaries for `event` / `gfp_flags`) of `cols`."""
        out: dict[str, pa.Array] = {}
        for name, (values, valid) in cols.items():
            if name == "event":
                out[name] = pa.DictionaryArray.from_arrays(numpy_to_arrow(values),
                                                           self.event_names)
            elif name == "gfp_flags":
                out[name] = pa.DictionaryArray.from_arrays(numpy_to_arrow(values, valid),
                                                           self.gfp_names())
            else:
                out[name] = numpy_to_arrow(values.astype(_DTYPES[name], copy=False), valid)
        return out


def numpy_to_arrow(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A numeric numpy array (and validity mask) as an Arrow array, without copying values.

    Built from buffers: `pa.array(ndarray)` would import pandas (~0.7 s) on first use.
    """
    values = np.ascontiguousarray(values)
    bitmap, nulls = None, 0
    if valid is not None:
        nulls = len(valid) - int(np.count_nonzero(valid))
        if nulls:
            bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                 [bitmap, pa.py_buffer(values)], null_count=nulls)


def comm_column(pids: np.ndarray, comms: Mapping[int, str]) -> pa.DictionaryArray:
    """Each pid's comm as libtraceevent prints it: `<idle>` for 0, `<...>` when unknown."""
    pids = np.asarray(pids, np.int64)
    if len(pids) and 0 <= pids.min() and pids.max() < 1 << 23:  # pid_max is at most 2^22
        seen = np.zeros(int(pids.max()) + 1, bool)
        seen[pids] = True
        uniq = np.flatnonzero(seen)
        lut = np.zeros(len(seen), np.int32)
        inv = None
    else:
        uniq, inv = np.unique(pids, return_inverse=True)
    names: dict[str, int] = {}
    codes = np.array([names.setdefault("<idle>" if p == 0 else comms.get(p, "<...>"), len(names))
                      for p in uniq.tolist()], np.int32)
    if inv is None:
        lut[uniq] = codes
        per_row = lut[pids]
    else:
        per_row = codes[inv.ravel()]
    return pa.DictionaryArray.from_arrays(numpy_to_arrow(per_row), strings_to_arrow(names))


def strings_to_arrow(strings: Iterable[str]) -> pa.Array:
    """A list of str as an Arrow string array (built from buffers, see `numpy_to_arrow`)."""
    data = [s.encode() for s in strings]
    offsets = np.zeros(len(data) + 1, np.int32)
    np.cumsum([len(d) for d in data], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(data),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])
