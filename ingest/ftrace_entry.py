"""Vectorized decoding of binary ftrace entries into the event schema's columns.

An ftrace entry is the payload of a ring-buffer data record (docs/formats.md §1-2): the common
fields (`common_type`, `common_flags`, `common_pid`, ...) then the event's own fields, at
the offsets its `format` text gives. trace.dat flyrecord data, perf.data RAW samples and
`trace_pipe_raw` pages all carry such entries; this module turns many of them at once into
columns in one compiled pass (numba), with no Python object per event.

API (stable; the trace.dat, perf.data and `replay record` readers use it):

    decoder = EntryDecoder(formats, big_endian=False)   # every event format of the trace
    index, columns = decoder.decode(buf, offset, length, stats, where=None)

- `buf`: uint8 array; `offset`/`length`: int arrays, one payload per record.
- `index`: positions (into `offset`) of the kmem page-event records, in input order.
- `columns`: dict for `ingest.schema.event_batch` with `pid`, `context`, `event`, `pfn`,
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
- `concat_columns(parts)` / `take_columns(cols, rows)`: numpy column sets appended
  (a column some part lacks is null there) and sliced, for readers that buffer rows.
- `comm_column(pids, comms)`: pid -> comm as libtraceevent names them (`<idle>` for pid 0,
  `<...>` when the pid is not in the saved cmdlines), dictionary-encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pyarrow as pa

from ingest.base import IngestStats
from ingest.event_format import EventFormat, Field, FlagTable, flag_table
from ingest.kernels import helper, kernel
from ingest.schema import CONTEXT_BH_OFF, CONTEXT_HARDIRQ, CONTEXT_IRQS_OFF, CONTEXT_NMI
from ingest.schema import CONTEXT_SOFTIRQ, READER_EVENTS, canonical_event

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

#: columns the decode kernel fills, in this order (order before percpu_refill)
_COLUMNS = ("pid", "context", "pfn", "page", "order", "migratetype", "gfp", *INT_FIELDS[2:])
_COL = {name: i for i, name in enumerate(_COLUMNS)}
# special field offsets in the decode spec
_ABSENT, _ZERO, _ORDER_IS_0 = -1, -2, -3


@helper(inline="always")
def _read(buf, p, size, signed, big):
    """The `size`-byte integer at buf[p], sign-extended when `signed`, as int64 bits."""
    if big:
        v = np.uint64(0)
        for k in range(size):
            v = (v << np.uint64(8)) | np.uint64(buf[p + k])
    elif size == 8:
        v = (np.uint64(buf[p]) | np.uint64(buf[p + 1]) << np.uint64(8)
             | np.uint64(buf[p + 2]) << np.uint64(16) | np.uint64(buf[p + 3]) << np.uint64(24)
             | np.uint64(buf[p + 4]) << np.uint64(32) | np.uint64(buf[p + 5]) << np.uint64(40)
             | np.uint64(buf[p + 6]) << np.uint64(48) | np.uint64(buf[p + 7]) << np.uint64(56))
    elif size == 4:
        v = (np.uint64(buf[p]) | np.uint64(buf[p + 1]) << np.uint64(8)
             | np.uint64(buf[p + 2]) << np.uint64(16) | np.uint64(buf[p + 3]) << np.uint64(24))
    elif size == 2:
        v = np.uint64(buf[p]) | np.uint64(buf[p + 1]) << np.uint64(8)
    else:
        v = np.uint64(buf[p])
    if signed and size < 8:
        sign = np.uint64(1) << np.uint64(8 * size - 1)
        if v & sign:
            v |= ~((sign << np.uint64(1)) - np.uint64(1))
    return np.int64(v)


# output arrays of the decode kernel, by dtype: column -> (group, row in the group)
_GROUPS = {"pid": (0, 0), "context": (1, 0), "pfn": (2, 0), "page": (2, 1), "gfp": (2, 2),
           "order": (3, 0), "migratetype": (3, 1), "alloc_order": (3, 2),
           "fallback_order": (3, 3), "alloc_migratetype": (3, 4),
           "fallback_migratetype": (3, 5), "change_ownership": (4, 0),
           "percpu_refill": (4, 1)}
_GROUP_OF = np.array([_GROUPS[c][0] for c in _COLUMNS], np.int64)
_ROW_OF = np.array([_GROUPS[c][1] for c in _COLUMNS], np.int64)


@kernel("u1_ro, i8[:], i8[:], i8, i8, b1, i2[::1], i8[::1], i8[::1], i8[:, :, ::1], i8[::1], "
        "i8[::1], i8[::1], i4[::1], i8[::1], i8[::1], i4[::1], u1[::1], i8[:, ::1], i2[:, ::1], "
        "i1[:, ::1], b1[:, ::1], i8[::1]", nogil=True)
def _decode(buf, offset, length, ct_off, ct_size, big, code_of_id, needed, nfields, spec,
            group_of, row_of, index, code, other, bad,
            o_pid, o_ctx, o64, o16, o8, valid, nvalid):
    """Classify records by common_type and read the fields of the page events into typed
    column arrays (one row per column: sequential writes). `spec[k, j]` = (column, offset,
    size, signed) of the j-th of the `nfields[k]` fields of event k; `valid` must come
    zeroed (absent columns stay null)."""
    npage = nother = nbad = 0
    pfn_col, page_col, order_col = 2, 3, 4
    for i in range(len(offset)):
        o = offset[i]
        if length[i] < ct_off + ct_size:
            other[nother] = -1
            nother += 1
            continue
        eid = _read(buf, o + ct_off, ct_size, False, big) & 0xFFFF
        k = code_of_id[eid]
        if k < 0:
            other[nother] = eid
            nother += 1
            continue
        if length[i] < needed[k]:
            bad[nbad] = i
            nbad += 1
            continue
        index[npage] = i
        code[npage] = k
        for j in range(nfields[k]):  # only the columns this event has
            c = spec[k, j, 0]
            off = spec[k, j, 1]
            ok = True
            if off >= 0:
                size = spec[k, j, 2]
                v = _read(buf, o + off, size, spec[k, j, 3] != 0, big)
                if c == pfn_col:  # a failed allocation stores pfn -1 (4.1+, a26c2565e1c0)
                    ok = v != -1 and (size == 8 or v != (np.int64(1) << (8 * size)) - 1)
                elif c == page_col:  # before 4.1: a NULL struct page * is a failure
                    ok = v != 0
            elif off == _ZERO:
                v = np.int64(0)
            else:  # _ORDER_IS_0
                ok = valid[order_col, npage]
                v = np.int64(1) if o16[row_of[order_col], npage] == 0 else np.int64(0)
            g = group_of[c]
            r = row_of[c]
            # a damaged record's value its column cannot hold (order 9699329) becomes null
            if g == 0:
                ok = ok and -(1 << 31) <= v < (1 << 31)
            elif g == 3:
                ok = ok and -(1 << 15) <= v < (1 << 15)
            elif g == 4:
                ok = ok and -(1 << 7) <= v < (1 << 7)
            if g == 0:
                o_pid[npage] = v
            elif g == 1:
                o_ctx[npage] = v
            elif g == 2:
                o64[r, npage] = v
            elif g == 3:
                o16[r, npage] = v
            else:
                o8[r, npage] = v
            valid[c, npage] = ok
            if ok:
                nvalid[c] += 1
        npage += 1
    return npage, nother, nbad


def _common_type(buf: np.ndarray, offset: int, ct: Field, big: bool) -> int:
    raw = buf[offset + ct.offset : offset + ct.offset + ct.size].tobytes()
    return int.from_bytes(raw, "big" if big else "little") & 0xFFFF


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


def _absent(spec: np.ndarray, name: str) -> bool:
    """Whether column `name` has no field in a decode spec."""
    return bool(spec[_COL[name], 0] == _ABSENT)


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
        event_code = {name: i for i, name in enumerate(self.event_names.to_pylist())}
        self._event_of_code = np.array([event_code[p.canonical] for p in self.page], np.int32)
        self._needed = np.array([p.needed for p in self.page] or [0], np.int64)
        # compact per-event field lists for the kernel: (column, offset, size, signed)
        self._spec = np.zeros((max(len(self.page), 1), len(_COLUMNS), 4), np.int64)
        self._nfields = np.zeros(max(len(self.page), 1), np.int64)
        for k, p in enumerate(self.page):
            full = self._field_spec(p)
            present = [c for c in range(len(_COLUMNS)) if full[c, 0] != _ABSENT]
            self._nfields[k] = len(present)
            for j, c in enumerate(present):
                self._spec[k, j] = (c, *full[c])
        self._gfp_dict: dict[str, int] = {}

    def _field_spec(self, p: _PageEvent) -> np.ndarray:
        """(offset, size, signed) of each decoded column in event `p`, or a special offset."""
        spec = np.full((len(_COLUMNS), 3), _ABSENT, np.int64)
        fields = {"pid": p.fmt.field("common_pid"), "context": p.fmt.field("common_flags"),
                  "gfp": p.gfp_field}
        for name in _COLUMNS:
            if name == "page":
                continue
            f = fields[name] if name in fields else p.fmt.field(name)
            if f is not None and f.dynamic is None and f.size in (1, 2, 4, 8):
                spec[_COL[name]] = (f.offset, f.size, f.signed and name != "gfp")
        if _absent(spec, "pfn") and p.fmt.field("page") is not None:
            f = p.fmt.field("page")  # before 4.1 (a26c2565e1c0): a struct page pointer
            spec[_COL["page"]] = (f.offset, f.size, 0)
        if _absent(spec, "order") and p.canonical == "mm_page_free_batched":
            spec[_COL["order"], 0] = _ZERO  # order 0, printed as "order=0"
        if _absent(spec, "percpu_refill") and p.canonical == "mm_page_alloc_zone_locked":
            # before 5.19 (10e0f7530205) the print fmt computed it as order == 0
            spec[_COL["percpu_refill"], 0] = _ORDER_IS_0
        return spec

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
        ct = self.common_type or Field("common_type", "unsigned short", 0, 2, False)
        n = len(offset)
        index = np.empty(n, np.int64)
        code = np.empty(n, np.int32)
        other = np.empty(n, np.int64)
        bad = np.empty(n, np.int64)
        out = (np.empty(n, np.int32), np.empty(n, np.uint8), np.empty((3, n), np.int64),
               np.empty((6, n), np.int16), np.empty((2, n), np.int8))
        valid = np.zeros((len(_COLUMNS), n), np.bool_)
        nvalid = np.zeros(len(_COLUMNS), np.int64)
        counts = _decode(np.ascontiguousarray(buf, np.uint8), offset, length, ct.offset,
                         ct.size, self.big, self.code, self._needed, self._nfields, self._spec, _GROUP_OF,
                         _ROW_OF, index, code, other, bad, *out, valid, nvalid)
        npage, nother, nbad = counts
        if nother:
            self._count_skipped(other[:nother], stats)
        if nbad:
            stats.add_malformed_many(nbad, ((where(int(i)), self._short(buf, offset, length, i, ct))
                                            for i in bad[:nbad]))
        index, code = index[:npage], code[:npage]
        if not npage:
            return index, {}
        return index, self._columns(code, out, valid, nvalid, npage)

    def _short(self, buf: np.ndarray, offset: np.ndarray, length: np.ndarray, i: int,
               ct: Field) -> str:
        """Why record `i`, a page event, is malformed: too short for its format."""
        p = self.page[self.code[_common_type(buf, offset[i], ct, self.big)]]
        return f"{p.fmt.name} record of {length[i]} bytes, its format needs {p.needed}"

    def _count_skipped(self, ids: np.ndarray, stats: IngestStats) -> None:
        uniq, counts = np.unique(ids, return_counts=True)
        for i, c in zip(uniq.tolist(), counts.tolist()):
            stats.skipped[self.names.get(i, "")] += c

    def _columns(self, code: np.ndarray, out: tuple, valid: np.ndarray, nvalid: np.ndarray,
                 n: int) -> NumpyColumns:
        cols: NumpyColumns = {}
        for c, name in enumerate(_COLUMNS):
            if not nvalid[c] and name not in ("pid", "context"):
                continue
            group, row = _GROUPS[name]
            v = out[group][:n] if group < 2 else out[group][row, :n]
            if name in ("page", "gfp"):
                v = v.view(np.uint64)
            elif name == "context":
                v &= CONTEXT_MASK
            cols[name] = (v, None if nvalid[c] == n else valid[c, :n])
        cols["event"] = (self._event_of_code[code], None)
        gfp = cols.get("gfp")
        if gfp is not None:
            flags = np.full(n, -1, np.int32)
            for k, p in enumerate(self.page):
                if p.gfp_table is None:
                    continue
                sel = code == k
                if gfp[1] is not None:
                    sel &= gfp[1]
                if sel.any():
                    flags[sel] = self._gfp_codes(p, gfp[0][sel])
            cols["gfp_flags"] = (flags, flags >= 0)
        return cols

    def _gfp_codes(self, p: _PageEvent, g: np.ndarray) -> np.ndarray:
        """Dictionary codes of the rendered gfp values; each new value is rendered once."""
        pos = np.searchsorted(p.gfp_values, g)
        hit = pos < len(p.gfp_values)
        hit[hit] = p.gfp_values[pos[hit]] == g[hit]
        if not hit.all():
            new = np.sort(g[~hit])  # unique values (np.unique would import numpy.ma)
            new = new[np.concatenate(([True], new[1:] != new[:-1]))]
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


def concat_columns(parts: list[tuple[NumpyColumns, int]]) -> NumpyColumns:
    """Column sets of n rows each, one after the other; a column a part lacks is null there."""
    parts = [(cols, n) for cols, n in parts if n]
    names = {name: cols[name][0].dtype for cols, _ in parts for name in cols}
    out: NumpyColumns = {}
    for name, dtype in names.items():
        values, valid = [], []
        nullable = any(name not in cols or cols[name][1] is not None for cols, _ in parts)
        for cols, n in parts:
            if name in cols:
                v, ok = cols[name]
                values.append(v)
                valid.append(ok if ok is not None else np.ones(n, bool))
            else:
                values.append(np.zeros(n, dtype))
                valid.append(np.zeros(n, bool))
        out[name] = (np.concatenate(values) if len(values) > 1 else values[0],
                     (np.concatenate(valid) if len(valid) > 1 else valid[0]) if nullable
                     else None)
    return out


def take_columns(cols: NumpyColumns, rows: np.ndarray | slice) -> NumpyColumns:
    """Rows `rows` (indices or a slice) of every column and its validity mask."""
    return {name: (v[rows], None if ok is None else ok[rows]) for name, (v, ok) in cols.items()}


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
