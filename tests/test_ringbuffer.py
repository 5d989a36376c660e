"""Ring-buffer sub-buffer decoding: event header types, time keeping, losses, corruption.

Synthetic sub-buffers built from docs/formats.md §2, for the cases a real capture rarely shows
(real sub-buffers are covered end to end by test_tracedat.py).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ingest.ringbuffer import (
    ERR_COMMIT,
    ERR_LENGTH,
    ERR_OVERRUN,
    MISSED_EVENTS,
    MISSED_STORED,
    decode_subbuffers,
)

SIZE = 256


def header(type_len: int, delta: int, big: bool = False) -> int:
    return (type_len << 27 | delta) if big else (delta << 5 | type_len)


def rec(type_len: int, delta: int, *words: int, big: bool = False) -> bytes:
    e = ">" if big else "<"
    return struct.pack(f"{e}I", header(type_len, delta, big)) + b"".join(
        struct.pack(f"{e}I", w) for w in words)


def page(ts: int, body: bytes, flags: int = 0, lost: int | None = None, long: int = 8,
         big: bool = False) -> bytes:
    e = ">" if big else "<"
    commit = struct.pack(e + ("Q" if long == 8 else "I"), len(body) | flags)
    tail = b"" if lost is None else struct.pack(e + ("Q" if long == 8 else "I"), lost)
    out = struct.pack(e + "Q", ts) + commit + body + tail
    return out + bytes(SIZE - len(out))


def decode(*pages: bytes, **kw):
    return decode_subbuffers(np.frombuffer(b"".join(pages), np.uint8), SIZE, **kw)


def test_data_records_and_deltas():
    r = decode(page(1000, rec(2, 5, 0xAAAA, 0xBBBB) + rec(1, 7, 0xCCCC)))
    assert r.ts.tolist() == [1005, 1012]
    assert r.offset.tolist() == [16 + 4, 16 + 16]
    assert r.length.tolist() == [8, 4]


def test_length_in_array_word():
    # type_len 0: array[0] = payload + 4; payload starts after it
    body = rec(0, 3, 4 + 10, 0x11111111, 0x22222222, 0x3333) + rec(1, 1, 0x44)
    r = decode(page(50, body))
    assert r.ts.tolist() == [53, 54]
    assert r.offset.tolist() == [16 + 8, 16 + 24]
    assert r.length.tolist() == [10, 4]


def test_time_extend_and_absolute_stamp():
    body = (rec(30, 5, 2) + rec(1, 1, 0)  # extend by (2 << 27) + 5, then +1
            + rec(31, 100, 0) + rec(1, 2, 0))  # absolute 100, then +2
    r = decode(page(10, body))
    assert r.ts.tolist() == [10 + (2 << 27) + 5 + 1, 102]


def test_absolute_stamp_keeps_the_top_bits():
    """The stamp holds 59 bits; the top 5 come from the running time (rb_fix_abs_ts)."""
    base = (1 << 60) + 1000
    r = decode(page(base, rec(31, 500, 0) + rec(1, 0, 0)))
    assert r.ts.tolist() == [(1 << 60) + 500 + (1 << 59)]  # went below: next 2^59 epoch


def test_padding():
    body = rec(29, 4, 12, 0, 0) + rec(1, 1, 0) + rec(29, 0, 100)  # discarded, data, end
    r = decode(page(0, body + rec(1, 1, 0)))
    assert r.ts.tolist() == [5]  # the discarded record's delta counts, as in libtraceevent


def test_lost_events():
    r = decode(page(0, rec(1, 1, 0), MISSED_EVENTS | MISSED_STORED, lost=17),
               page(0, rec(1, 1, 0), MISSED_EVENTS), page(0, rec(1, 1, 0)))
    assert r.missed.tolist() == [True, True, False]
    assert r.lost.tolist() == [17, -1, 0]
    assert len(r.ts) == 3


def test_big_endian_and_32_bit_long():
    body = rec(2, 9, 1, 2, big=True)
    r = decode(page(7, body, long=4, big=True), commit_size=4, big_endian=True)
    assert r.ts.tolist() == [16] and r.offset.tolist() == [12 + 4] and r.length.tolist() == [8]


def test_empty_and_zero_pages():
    r = decode(bytes(SIZE), page(5, b""))
    assert len(r.ts) == 0 and not r.error.any()


@pytest.mark.parametrize("body, flags, error", [
    (rec(1, 1, 0), SIZE, ERR_COMMIT),  # commit larger than the sub-buffer
    (rec(0, 1, 2), 0, ERR_LENGTH),  # array[0] below its own 4 bytes
    (rec(0, 1, 400, 0), 0, ERR_OVERRUN),  # payload past commit
    (rec(5, 1, 0), 0, ERR_OVERRUN),  # type_len 5 = 20 bytes, only 4 committed
    (rec(30, 1), 0, ERR_OVERRUN),  # time extend cut by commit
])
def test_corruption_is_reported_not_followed(body, flags, error):
    good = page(0, rec(1, 1, 0))
    r = decode(good, page(0, rec(1, 2, 0) + body, flags), good)
    assert r.error.tolist() == [0, error, 0]
    assert r.error_offset[1] >= SIZE
    assert r.ts.tolist() == [1, 2, 1] if error != ERR_COMMIT else r.ts.tolist() == [1, 1]
