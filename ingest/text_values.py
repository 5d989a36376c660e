"""Compiled decoding of the rendered kmem event text shared by every text reader.

Text readers hand over one byte buffer and, per event, the byte range of its rendered
`print fmt` body (`page=... pfn=... order=...`). `decode_body` (numba) turns a body into
the schema's numeric columns in one pass over its bytes; `value_columns` makes Arrow
columns of the results. Covered variants (docs/formats.md §6.4, §7): decimal or 0x pfn, raw /
hashed / 0x / `(null)` / `(nil)` page pointers, failed allocations (NULL page or pfn -1 →
`pfn` null), gfp flags as names, raw hex (fills `gfp`), `none` or `GFP_NOWAIT` (gfp 0),
old event names, unknown extra `key=value` fields (ignored).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ingest.kernels import helper, kernel
from ingest.schema import EVENT_ALIASES, EVENT_NAMES, canonical_event


def _table(words: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Words as one byte array and offsets, for matching inside compiled code."""
    data = np.frombuffer(b"".join(w.encode() for w in words), dtype=np.uint8).copy()
    off = np.zeros(len(words) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(w) for w in words])
    return data, off


#: every event name a text trace may use for a page event ...
TEXT_EVENT_NAMES = EVENT_NAMES + tuple(EVENT_ALIASES)
NAME_DATA, NAME_OFF = _table(TEXT_EVENT_NAMES)
#: ... and the index of its canonical name in EVENT_NAMES
CANONICAL = np.array([EVENT_NAMES.index(canonical_event(n)) for n in TEXT_EVENT_NAMES],
                     dtype=np.int8)
EV_ALLOC, EV_FREE, EV_FREE_BATCHED, EV_ZONE_LOCKED, EV_PCPU_DRAIN, EV_EXTFRAG = range(6)

#: Numeric outputs of a body, in column order of `decode_body`'s `vals` matrix. The
#: first ten are also the body keys that fill them; `gfp` is filled by `gfp_flags=`.
FIELDS = (
    "pfn",
    "page",
    "order",
    "migratetype",
    "alloc_order",
    "fallback_order",
    "alloc_migratetype",
    "fallback_migratetype",
    "change_ownership",
    "percpu_refill",
    "gfp",
)
F_PFN, F_PAGE, F_ORDER = 0, 1, 2
F_INT8 = 8  # change_ownership and percpu_refill are int8 columns, the rest before int16
F_GFP = 10
N_FIELDS = len(FIELDS)
KEY_DATA, KEY_OFF = _table(FIELDS[:F_GFP] + ("gfp_flags",))
_DTYPES = ("int64", "uint64") + ("int16",) * 6 + ("int8",) * 2 + ("uint64",)

_NONE = np.frombuffer(b"none", dtype=np.uint8)
_GFP_NOWAIT = np.frombuffer(b"GFP_NOWAIT", dtype=np.uint8)  # 0 before 4.6 (1f7866b4aebd)
_NULL = np.frombuffer(b"(null)", dtype=np.uint8)
_NIL = np.frombuffer(b"(nil)", dtype=np.uint8)


@helper(nogil=True)
def lookup(buf, s, e, data, off):  # noqa: ANN001, ANN201 - compiled
    """Index of the word buf[s:e] in the table (data, off), or -1."""
    n = e - s
    for k in range(len(off) - 1):
        if off[k + 1] - off[k] != n:
            continue
        base = off[k]
        j = 0
        while j < n and buf[s + j] == data[base + j]:
            j += 1
        if j == n:
            return k
    return -1


@helper(nogil=True)
def _equals(buf, s, e, word):  # noqa: ANN001, ANN202
    if e - s != len(word):
        return False
    for j in range(e - s):
        if buf[s + j] != word[j]:
            return False
    return True


@helper(nogil=True)
def _hex_digit(c):  # noqa: ANN001, ANN202
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


@helper(nogil=True)
def parse_hex(buf, s, e):  # noqa: ANN001, ANN201
    """(value, ok) of hex digits buf[s:e] (optional 0x); 64-bit values wrap to int64."""
    if e - s > 2 and buf[s] == 48 and (buf[s + 1] == 120 or buf[s + 1] == 88):
        s += 2
    if s >= e or e - s > 16:
        return np.int64(0), False
    v = np.int64(0)
    for j in range(s, e):
        d = _hex_digit(buf[j])
        if d < 0:
            return np.int64(0), False
        v = (v << 4) | d
    return v, True


@helper(nogil=True)
def parse_number(buf, s, e):  # noqa: ANN001, ANN201
    """(value, ok) of a decimal (optionally negative) or 0x-hex number in buf[s:e]."""
    if e - s > 2 and buf[s] == 48 and (buf[s + 1] == 120 or buf[s + 1] == 88):
        return parse_hex(buf, s, e)
    neg = False
    if s < e and buf[s] == 45:
        neg = True
        s += 1
    if s >= e or e - s > 20:  # 20 digits: an unsigned long -1 wraps to -1
        return np.int64(0), False
    v = np.int64(0)
    for j in range(s, e):
        c = buf[j]
        if c < 48 or c > 57:
            return np.int64(0), False
        v = v * 10 + (c - 48)
    return (-v if neg else v), True


@helper(nogil=True)
def _null(buf, s, e):  # noqa: ANN001, ANN202
    """Whether a printed pointer is NULL: `(null)`, `(nil)`, zeros, 0x0."""
    if s < e and buf[s] == 40:
        return _equals(buf, s, e, _NULL) or _equals(buf, s, e, _NIL)
    if e - s > 2 and buf[s] == 48 and buf[s + 1] == 120:
        s += 2
    if s >= e:
        return False
    for j in range(s, e):
        if buf[j] != 48:
            return False
    return True


@helper(nogil=True)
def decode_body(buf, s, e, ev, row, vals, valid, gfp_s, gfp_e):  # noqa: ANN001, ANN201
    """Decode the kmem body buf[s:e] of canonical event `ev` into row `row`.

    Fills vals/valid[row, F_*] and the byte range of the `gfp_flags` text; returns
    False when the body is malformed: a value that does not parse or does not fit its
    column, or a field the event cannot do without.
    """
    has_page = False
    page_s = page_e = 0
    i = s
    while i < e:
        while i < e and (buf[i] == 32 or buf[i] == 9):
            i += 1
        k = i
        while i < e and buf[i] != 61 and buf[i] != 32 and buf[i] != 9:
            i += 1
        if i >= e or buf[i] != 61:
            continue  # a word without '=': not a field, tolerated
        ke = i
        i += 1
        while i < e and buf[i] == 32:  # `page=%p` pads a NULL pointer's "(null)"
            i += 1
        v = i
        while i < e and buf[i] != 32 and buf[i] != 9:
            i += 1
        f = lookup(buf, k, ke, KEY_DATA, KEY_OFF)
        if f < 0:
            continue  # unknown extra field (pageblock_order=, fragmenting=, cold=, ...)
        if f == F_PAGE:  # decoded after the loop, only where no pfn was printed
            has_page = True
            page_s = v
            page_e = i
        elif f == F_GFP:  # gfp_flags=
            if i == v:
                return False
            gfp_s[row] = v
            gfp_e[row] = i
            if i - v > 2 and buf[v] == 48 and buf[v + 1] == 120:
                x, ok = parse_hex(buf, v, i)
                if ok:  # raw bits: 6.10-6.12 enum leak (60295b944ff6) or no name table
                    vals[row, F_GFP] = x
                    valid[row, F_GFP] = True
            elif _equals(buf, v, i, _NONE) or _equals(buf, v, i, _GFP_NOWAIT):
                vals[row, F_GFP] = 0
                valid[row, F_GFP] = True
        else:
            x, ok = parse_number(buf, v, i)
            if not ok:
                return False
            if f != F_PFN:  # orders, migratetypes, flags: small and never negative
                limit = 128 if f >= F_INT8 else 32768
                if x >= limit or x < 0:
                    return False
            vals[row, f] = x
            valid[row, f] = True
    has_pfn = valid[row, F_PFN]
    if not has_pfn and not has_page:
        return False
    # A failed allocation: NULL page, or pfn -1 (the 4.1+ binary value some tools print).
    if (has_pfn and vals[row, F_PFN] == -1) or (has_page and _null(buf, page_s, page_e)):
        valid[row, F_PFN] = False
    elif not has_pfn:  # the pointer is kept only where no pfn was traced
        x, ok = parse_hex(buf, page_s, page_e)
        if ok:  # junk such as "(____ptrval____)" is not a key anyway
            vals[row, F_PAGE] = x
            valid[row, F_PAGE] = True
    if ev == EV_FREE_BATCHED:
        if not valid[row, F_ORDER]:  # order=0 printed since 4.15, implied before
            vals[row, F_ORDER] = 0
            valid[row, F_ORDER] = True
    elif ev != EV_EXTFRAG and not valid[row, F_ORDER]:
        return False
    if ev == EV_ALLOC and gfp_s[row] < 0:
        return False
    return True


@kernel("u1_ro, i8[::1], i8[::1], i1[::1]", nogil=True)
def decode_bodies(buf, starts, ends, evs):  # noqa: ANN001, ANN201
    """`decode_body` over many bodies: (vals, valid, gfp_s, gfp_e, ok)."""
    n = len(starts)
    vals = np.zeros((n, N_FIELDS), np.int64)
    valid = np.zeros((n, N_FIELDS), np.bool_)
    gfp_s = np.full(n, -1, np.int64)
    gfp_e = np.full(n, -1, np.int64)
    ok = np.zeros(n, np.bool_)
    for r in range(n):
        ok[r] = decode_body(buf, starts[r], ends[r], evs[r], r, vals, valid, gfp_s, gfp_e)
    return vals, valid, gfp_s, gfp_e, ok


@kernel("u1_ro, i8[::1], i8[::1]", nogil=True)
def _gather(buf, starts, ends):  # noqa: ANN001, ANN202
    n = len(starts)
    off = np.zeros(n + 1, np.int32)
    for i in range(n):
        off[i + 1] = off[i] + max(ends[i] - starts[i], 0)
    out = np.empty(off[n], np.uint8)
    for i in range(n):
        out[off[i] : off[i + 1]] = buf[starts[i] : starts[i] + off[i + 1] - off[i]]
    return off, out


def strings(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
            valid: np.ndarray | None = None) -> pa.StringArray:
    """The byte ranges buf[starts[i]:ends[i]] as an Arrow string array (null where not valid).

    The buffer must be valid UTF-8 (lines.py guarantees it for text blocks).
    """
    off, out = _gather(buf, starts, ends)
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(len(starts), pa.py_buffer(off), pa.py_buffer(out),
                                       bitmap)


def dictionary(codes: np.ndarray, names: tuple[str, ...] = EVENT_NAMES) -> pa.DictionaryArray:
    """Codes into `names` as a dictionary array (the schema's `event` type)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(names))


def value_columns(buf: np.ndarray, vals: np.ndarray, valid: np.ndarray, gfp_s: np.ndarray,
                  gfp_e: np.ndarray) -> dict[str, pa.Array]:
    """Schema columns from `decode_body` outputs (rows already selected)."""
    cols = {}
    for f, (name, dtype) in enumerate(zip(FIELDS, _DTYPES)):
        ok = valid[:, f]
        if ok.any():  # columns of other events (extfrag's, zone_locked's) are mostly empty
            cols[name] = pa.array(vals[:, f].astype(dtype), mask=None if ok.all() else ~ok)
    has = gfp_s >= 0
    cols["gfp_flags"] = strings(buf, gfp_s, gfp_e, None if has.all() else has).dictionary_encode()
    return cols
