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
from replay.schema import CONTEXT_SOFTIRQ, canonical_event

#: TRACE_FLAG_* bits of common_flags kept as `context` (kernel/trace/trace.h)
CONTEXT_MASK = CONTEXT_IRQS_OFF | CONTEXT_HARDIRQ | CONTEXT_SOFTIRQ | CONTEXT_NMI | CONTEXT_BH_OFF

#: event fields that become small-integer schema columns, when the format has them
INT_FIELDS = ("order", "migratetype", "alloc_order", "fallback_order", "alloc_migratetype",
              "fallback_migratetype", "change_ownership", "percpu_refill")


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
        self.event_names = pa.array(sorted({p.canonical for p in self.page}), pa.string())
        self._event_code = {name: i for i, name in enumerate(self.event_names.to_pylist())}
        self._gfp_dict: dict[str, int] = {}

    def gfp_names(self) -> pa.Array:
        """The dictionary of every `gfp_flags` column returned so far (it only grows)."""
        return pa.array(list(self._gfp_dict), pa.string())

    def decode(
        self,
        buf: np.ndarray,
        offset: np.ndarray,
        length: np.ndarray,
        stats: IngestStats,
        where: Callable[[int], str] | None = None,
    ) -> tuple[np.ndarray, dict[str, object]]:
        """Columns of the page-event records among the given ones (see module doc)."""
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

    def _columns(self, buf: np.ndarray, code: np.ndarray, offs: np.ndarray) -> dict[str, object]:
        n = len(offs)
        cols: dict[str, object] = {}
        flags = read_field(buf, offs, self.common_flags, self.big) if self.common_flags else None
        cols["pid"] = read_field(buf, offs, self.common_pid, self.big).astype(np.int32)
        if flags is not None:
            cols["context"] = (flags & CONTEXT_MASK).astype(np.uint8)
        ints = {k: (np.zeros(n, np.int64), np.zeros(n, bool)) for k in
                ("pfn", "page", "gfp", *INT_FIELDS)}
        gfp_idx = np.full(n, -1, np.int32)
        gfp_dict = self._gfp_dict
        event_idx = np.empty(n, np.int32)
        for k, p in enumerate(self.page):
            sel = np.flatnonzero(code == k)
            if not len(sel):
                continue
            o = offs[sel]
            event_idx[sel] = self._event_code[p.canonical]
            fmt = p.fmt

            def put(col: str, values: np.ndarray, valid: np.ndarray | bool = True) -> None:
                ints[col][0][sel] = values
                ints[col][1][sel] = valid

            if (f := fmt.field("pfn")) is not None:
                v = read_field(buf, o, f, self.big)
                # a failed allocation stores pfn -1 (4.1+, a26c2565e1c0)
                all_ones = -1 if f.size == 8 else (1 << (8 * f.size)) - 1
                put("pfn", v, (v != -1) & (v != all_ones))
            elif (f := fmt.field("page")) is not None:
                v = read_field(buf, o, f, self.big)  # before 4.1: struct page *, NULL = failed
                put("page", v, v != 0)
            order = fmt.field("order")
            for name in INT_FIELDS:
                if (f := fmt.field(name)) is not None:
                    put(name, read_field(buf, o, f, self.big))
            if order is None and p.canonical == "mm_page_free_batched":
                put("order", np.zeros(len(sel), np.int64))  # order 0, printed as "order=0"
            if p.canonical == "mm_page_alloc_zone_locked" and fmt.field("percpu_refill") is None:
                # before 5.19 (10e0f7530205) the print fmt computed it as order == 0
                put("percpu_refill", (ints["order"][0][sel] == 0).astype(np.int64))
            if p.gfp_field is not None:
                g = read_field(buf, o, p.gfp_field, self.big)
                if p.gfp_field.size < 8:
                    g &= (1 << (8 * p.gfp_field.size)) - 1
                put("gfp", g)
                if p.gfp_table is not None:
                    uniq, inv = np.unique(g.view(np.uint64), return_inverse=True)
                    codes = np.array([gfp_dict.setdefault(p.gfp_table.render(int(v)), len(gfp_dict))
                                      for v in uniq], np.int32)
                    gfp_idx[sel] = codes[inv.ravel()]
        cols["event"] = pa.DictionaryArray.from_arrays(pa.array(event_idx), self.event_names)
        for col, (values, valid) in ints.items():
            if col in ("gfp", "page"):
                cols[col] = pa.array(values.view(np.uint64), mask=~valid)
            else:
                cols[col] = pa.array(values, mask=~valid)
        cols["gfp_flags"] = pa.DictionaryArray.from_arrays(
            pa.array(gfp_idx, mask=gfp_idx < 0), self.gfp_names())
        return cols


def comm_column(pids: np.ndarray, comms: Mapping[int, str]) -> pa.DictionaryArray:
    """Each pid's comm as libtraceevent prints it: `<idle>` for 0, `<...>` when unknown."""
    uniq, inv = np.unique(np.asarray(pids, np.int64), return_inverse=True)
    names: dict[str, int] = {}
    codes = np.array([names.setdefault("<idle>" if p == 0 else comms.get(p, "<...>"), len(names))
                      for p in uniq.tolist()], np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(codes[inv.ravel()]),
                                          pa.array(list(names), pa.string()))
