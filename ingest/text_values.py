"""Vectorized decoding of the rendered kmem event text shared by every text reader.

Given the event names and the rendered `print fmt` bodies of many lines (Arrow string
arrays), produce the schema's columns: `pfn`, `page`, `order`, `gfp`, `gfp_flags`,
`migratetype` and the extfrag / zone_locked extras. All kernel-version variants of
FORMATS.md §6.4 and §7: decimal or 0x pfn, NULL pages, names or raw hex gfp flags.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from replay.schema import CONTEXT_BH_OFF, CONTEXT_HARDIRQ, CONTEXT_IRQS_OFF, CONTEXT_NMI
from replay.schema import CONTEXT_SOFTIRQ, EVENT_ALIASES, EVENT_NAMES

_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i

#: every event name a text trace may use for a page event, and its canonical name
_NAMES = pa.array(list(EVENT_NAMES) + list(EVENT_ALIASES))
_CANONICAL = pa.array(list(EVENT_NAMES) + list(EVENT_ALIASES.values()))

#: key=value fields of the kmem events that become integer columns
INT_FIELDS = (
    "order",
    "migratetype",
    "alloc_order",
    "fallback_order",
    "alloc_migratetype",
    "fallback_migratetype",
    "change_ownership",
    "percpu_refill",
)


def page_event_index(names: pa.Array) -> pa.Array:
    """For each event name, its index in the page-event name list, or null."""
    return pc.index_in(names, value_set=_NAMES)


def canonical_names(index: pa.Array) -> pa.Array:
    """Canonical event names for indices returned by `page_event_index`."""
    return pc.take(_CANONICAL, index)


def _fixed_width(strings: pa.Array, width: int) -> np.ndarray:
    """Left-pad strings with '0' to `width` bytes and view them as an (n, width) matrix."""
    padded = pc.utf8_lpad(strings.fill_null("0"), width=width, padding="0")
    padded = pc.utf8_slice_codeunits(padded, -width)  # keep the last `width` digits
    data = padded.buffers()[2]
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)[
        padded.offset : padded.offset + len(padded) + 1
    ]
    return np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(-1, width)


def parse_hex(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Hex digit strings (no 0x) → (uint64 values, valid mask); bad digits are invalid."""
    if len(strings) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, bool)
    too_long = pc.fill_null(pc.greater(pc.utf8_length(strings), 16), True).to_numpy(
        zero_copy_only=False
    )
    digits = _HEX[_fixed_width(strings, 16)]
    valid = (digits != 255).all(axis=1) & ~too_long & strings.is_valid().to_numpy(
        zero_copy_only=False
    )
    digits = np.where(digits == 255, 0, digits).astype(np.uint64)
    shifts = np.arange(60, -1, -4, dtype=np.uint64)
    values = np.bitwise_or.reduce(digits << shifts, axis=1)
    return values, valid


def parse_int(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Decimal, negative or 0x-hex strings → (int64 values, valid mask), vectorized."""
    strings = strings.cast(pa.string())
    is_hex = pc.fill_null(pc.starts_with(strings, "0x"), False)
    hex_digits = pc.if_else(is_hex, pc.utf8_slice_codeunits(strings, 2), pa.scalar(None, pa.string()))
    hvals, hvalid = parse_hex(hex_digits)
    dec_ok = pc.fill_null(pc.match_substring_regex(strings, r"^-?\d{1,19}$"), False)
    dec = pc.if_else(dec_ok, strings, pa.scalar(None, pa.string())).cast(pa.int64(), safe=False)
    dvals = dec.fill_null(0).to_numpy(zero_copy_only=False)
    is_hex_np = is_hex.to_numpy(zero_copy_only=False)
    values = np.where(is_hex_np, hvals.view(np.int64), dvals)
    valid = np.where(is_hex_np, hvalid, dec_ok.to_numpy(zero_copy_only=False))
    return values, valid


def _field(bodies: pa.Array, key: str, value: str = r"\S+") -> pa.Array:
    """The text of `key=value` in each body (null where absent); key must start a word."""
    pattern = rf"(?:^|[\s,]){key}=\s*(?P<v>{value})"
    return pc.struct_field(pc.extract_regex(bodies, pattern), [0])


def _masked(values: np.ndarray, valid: np.ndarray, dtype: str) -> pa.Array:
    return pa.array(values.astype(dtype, copy=False), mask=~valid)


def decode_bodies(events: pa.Array, bodies: pa.Array) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Columns decoded from rendered kmem bodies, and a mask of bodies that failed.

    `events` are canonical names. A body fails when its event needs a field it lacks
    (e.g. an `mm_page_alloc` without `order=`) or a value does not parse.
    """
    n = len(bodies)
    cols: dict[str, pa.Array] = {}
    bad = np.zeros(n, dtype=bool)

    pfn_text = _field(bodies, "pfn")
    pfn, pfn_ok = parse_int(pfn_text)
    page_text = _field(bodies, "page")
    null_page = pc.fill_null(
        pc.match_substring_regex(page_text, r"^(\(null\)|\(nil\)|0+|0x0+)$"), False
    ).to_numpy(zero_copy_only=False)
    has_pfn = pfn_text.is_valid().to_numpy(zero_copy_only=False)
    bad |= has_pfn & ~pfn_ok
    # A failed allocation: NULL page, or pfn -1 (4.1+ binary value printed by some tools).
    failed = null_page | (pfn_ok & (pfn == -1))
    cols["pfn"] = _masked(pfn, pfn_ok & ~failed, "int64")
    # Where no pfn was printed (never since 2.6.32, but tolerated), keep the pointer.
    ptr_hex = pc.if_else(
        pc.fill_null(pc.starts_with(page_text, "0x"), False),
        pc.utf8_slice_codeunits(page_text, 2),
        page_text,
    )
    ptr, ptr_ok = parse_hex(ptr_hex)
    cols["page"] = _masked(ptr, ptr_ok & ~has_pfn & ~null_page, "uint64")

    ints = {}
    for key in INT_FIELDS:
        text = _field(bodies, key)
        values, ok = parse_int(text)
        present = text.is_valid().to_numpy(zero_copy_only=False)
        bad |= present & ~ok
        ints[key] = (values, ok)
        cols[key] = _masked(values, ok, "int64")

    gfp_text = _field(bodies, "gfp_flags")
    raw_hex = pc.fill_null(pc.match_substring_regex(gfp_text, r"^0x[0-9a-fA-F]+$"), False)
    gvals, gok = parse_hex(
        pc.if_else(raw_hex, pc.utf8_slice_codeunits(gfp_text, 2), pa.scalar(None, pa.string()))
    )
    cols["gfp"] = _masked(gvals, gok, "uint64")
    cols["gfp_flags"] = gfp_text

    # Fields each event cannot do without.
    ev = events.to_numpy(zero_copy_only=False)
    needs_order = np.isin(ev, ("mm_page_alloc", "mm_page_free", "mm_page_alloc_zone_locked",
                               "mm_page_pcpu_drain"))
    bad |= needs_order & ~ints["order"][1]
    bad |= (ev == "mm_page_alloc") & ~gfp_text.is_valid().to_numpy(zero_copy_only=False)
    bad |= ~has_pfn & ~page_text.is_valid().to_numpy(zero_copy_only=False)
    # mm_page_free_batched: order 0 (printed since 4.15; before, implied).
    order_vals, order_ok = ints["order"]
    batched = ev == "mm_page_free_batched"
    cols["order"] = _masked(np.where(batched & ~order_ok, 0, order_vals), order_ok | batched,
                            "int64")
    # zone_locked before 5.19: percpu_refill is computed at print time as order == 0.
    return cols, bad


def context_from_flags(flags: pa.Array) -> pa.Array:
    """TRACE_FLAG_* bits from the irq-flags column (kernel trace_print_lat_fmt)."""
    first = pc.utf8_slice_codeunits(flags, 0, 1)
    third = pc.utf8_slice_codeunits(flags, 2, 3)
    irq = pc.take(
        pa.array([CONTEXT_IRQS_OFF, CONTEXT_IRQS_OFF | CONTEXT_BH_OFF, CONTEXT_BH_OFF, 0, 0, 0],
                 pa.uint8()),
        pc.index_in(first, value_set=pa.array(["d", "D", "b", ".", "X", "B"])),
    )
    hard = pc.take(
        pa.array([CONTEXT_NMI | CONTEXT_HARDIRQ, CONTEXT_NMI, CONTEXT_HARDIRQ | CONTEXT_SOFTIRQ,
                  CONTEXT_HARDIRQ, CONTEXT_SOFTIRQ, 0], pa.uint8()),
        pc.index_in(third, value_set=pa.array(["Z", "z", "H", "h", "s", "."])),
    )
    return pc.bit_wise_or(irq, hard)


def parse_timestamps(text: pa.Array) -> pa.Array:
    """`secs.frac` (µs or ns digits) or raw integer counts → int64 ns (raw counts as is)."""
    parts = pc.extract_regex(text, r"^(?P<s>\d+)(?:\.(?P<f>\d{1,9}))?$")
    secs = pc.struct_field(parts, [0]).cast(pa.int64())
    frac = pc.struct_field(parts, [1])
    has_frac = pc.fill_null(pc.greater(pc.utf8_length(frac), 0), False)
    ns = pc.utf8_rpad(frac, width=9, padding="0")
    ns = pc.if_else(has_frac, ns, pa.scalar("0")).cast(pa.int64())
    with_frac = pc.add(pc.multiply(secs, 1_000_000_000), ns)
    return pc.if_else(has_frac, with_frac, secs)
