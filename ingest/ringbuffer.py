"""Compiled decoding of ftrace ring-buffer sub-buffers (docs/formats.md §2).

The same sub-buffers appear in trace.dat flyrecord data and in `per_cpu/cpuN/
trace_pipe_raw` reads. One numba loop walks every sub-buffer of a buffer and returns
arrays of (timestamp, payload offset, payload length) for its data records, with
libtraceevent's time semantics (`src/kbuffer-parse.c`) so timestamps equal `trace-cmd
report`'s, plus what each sub-buffer header says about lost events and any corruption.

API (stable; the trace.dat reader and `replay record` use it):

    decode_subbuffers(buf, subbuf_size, commit_size=8, data_offset=None, big_endian=False)
        -> SubbufRecords

`buf` is a 1-D uint8 array holding whole sub-buffers back to back; `commit_size` is the
kernel long size (header_page's commit size); `data_offset` defaults to 8 + commit_size.
`SubbufRecords` fields:
- `ts` int64, `offset` int64 (payload start in `buf`), `length` int32: one per data record;
- per sub-buffer: `missed` bool (events were lost before it), `lost` int64 (count when
  stored, -1 when lost but not counted, 0 otherwise), `error` int8 (ERR_* code, 0 = fine)
  and `error_offset` int64 (byte in `buf` where it went wrong). A corrupt sub-buffer keeps
  the records decoded before the fault; the walk never reads past `commit` nor loops.
- `count_lost(stats, cpu)` adds the lost events to `stats.lost_events` / `lost_unknown`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.base import IngestStats
from ingest.kernels import helper, kernel

# type_len values of the event header (kernel `ring_buffer_print_entry_header`)
TYPE_PADDING = 29
TYPE_TIME_EXTEND = 30
TYPE_TIME_STAMP = 31
TS_SHIFT = 27
# commit flags (kernel ring_buffer.c RB_MISSED_EVENTS / RB_MISSED_STORED)
MISSED_EVENTS = 1 << 31
MISSED_STORED = 1 << 30
COMMIT_MASK = (1 << 27) - 1  # libtraceevent masks the commit size with 27 bits

ERR_NONE = 0
ERR_COMMIT = 1  # commit size larger than the sub-buffer's data area
ERR_OVERRUN = 2  # a record runs past commit
ERR_LENGTH = 3  # a type_len 0 record with a length below its own header

ERROR_TEXT = {
    ERR_COMMIT: "sub-buffer commit size exceeds the sub-buffer",
    ERR_OVERRUN: "event record runs past the sub-buffer's commit size",
    ERR_LENGTH: "event record with an impossible length",
}

_TS_MSB = np.uint64(0xF8 << 56)


@dataclass
class SubbufRecords:
    """Data records of a run of sub-buffers and the state of each sub-buffer."""

    ts: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    missed: np.ndarray
    lost: np.ndarray
    error: np.ndarray
    error_offset: np.ndarray

    def count_lost(self, stats: IngestStats, cpu: int) -> None:
        """Add the events the sub-buffer headers say were lost to CPU `cpu`'s counts."""
        lost = self.lost[self.missed]
        n = int(lost[lost > 0].sum())
        if n:
            stats.lost_events[cpu] += n
        if (lost < 0).any():
            stats.lost_unknown.add(cpu)


@helper(inline="always")
def _u32(buf, i, big):
    if big:
        return (np.uint32(buf[i]) << 24) | (np.uint32(buf[i + 1]) << 16) | (
            np.uint32(buf[i + 2]) << 8) | np.uint32(buf[i + 3])
    return (np.uint32(buf[i + 3]) << 24) | (np.uint32(buf[i + 2]) << 16) | (
        np.uint32(buf[i + 1]) << 8) | np.uint32(buf[i])


@helper(inline="always")
def _u64(buf, i, big):
    a = np.uint64(_u32(buf, i, big))
    b = np.uint64(_u32(buf, i + 4, big))
    if big:
        return (a << np.uint64(32)) | b
    return (b << np.uint64(32)) | a


@kernel("u1_ro, i8, i8, i8, i8, b1, i8[::1], i8[::1], i4[::1], b1[::1], i8[::1], i1[::1], i8[::1]")
def _walk(buf, nsub, subbuf_size, commit_size, data_offset, big,
          ts_out, off_out, len_out, missed, lost, error, error_offset):
    n = 0
    data_room = subbuf_size - data_offset
    for s in range(nsub):
        base = s * subbuf_size
        ts = _u64(buf, base, big)
        if commit_size == 8:
            commit = _u64(buf, base + 8, big)
        else:
            commit = np.uint64(_u32(buf, base + 8, big))
        flags = commit & np.uint64(MISSED_EVENTS | MISSED_STORED)
        size = np.int64(commit & np.uint64(COMMIT_MASK))
        data = base + data_offset
        if size > data_room:
            error[s] = ERR_COMMIT
            error_offset[s] = base + 8
            continue
        if flags & np.uint64(MISSED_EVENTS):
            missed[s] = True
            lost[s] = -1
            if flags & np.uint64(MISSED_STORED) and size + commit_size <= data_room:
                if commit_size == 8:
                    lost[s] = np.int64(_u64(buf, data + size, big))
                else:
                    lost[s] = np.int64(_u32(buf, data + size, big))
        end = data + size
        p = data
        while p < end:
            if p + 4 > end:
                error[s] = ERR_OVERRUN
                error_offset[s] = p
                break
            word = _u32(buf, p, big)
            if big:
                type_len = word >> np.uint32(27)
                delta = np.uint64(word & np.uint32(0x7FFFFFF))
            else:
                type_len = word & np.uint32(0x1F)
                delta = np.uint64(word >> np.uint32(5))
            if type_len == TYPE_PADDING:
                ts += delta  # libtraceevent adds a padding record's delta too
                if delta == 0:
                    break  # the rest of the sub-buffer is unused
                if p + 8 > end:
                    error[s] = ERR_OVERRUN
                    error_offset[s] = p
                    break
                p += 4 + np.int64(_u32(buf, p + 4, big))
                if p > end:
                    error[s] = ERR_OVERRUN
                    error_offset[s] = p
                continue
            if type_len == TYPE_TIME_EXTEND or type_len == TYPE_TIME_STAMP:
                if p + 8 > end:
                    error[s] = ERR_OVERRUN
                    error_offset[s] = p
                    break
                ext = (np.uint64(_u32(buf, p + 4, big)) << np.uint64(TS_SHIFT)) + delta
                if type_len == TYPE_TIME_EXTEND:
                    ts += ext
                else:
                    # 59-bit absolute stamp: restore the top bits (kernel rb_fix_abs_ts)
                    if ts & _TS_MSB:
                        ext |= ts & _TS_MSB
                        if ext < ts:
                            ext += np.uint64(1) << np.uint64(59)
                    ts = ext
                p += 8
                continue
            if type_len == 0:
                if p + 8 > end:
                    error[s] = ERR_OVERRUN
                    error_offset[s] = p
                    break
                alen = np.int64(_u32(buf, p + 4, big))
                if alen < 4:
                    error[s] = ERR_LENGTH
                    error_offset[s] = p
                    break
                payload = p + 8
                length = alen - 4
                nxt = payload + ((length + 3) & ~3)
            else:
                payload = p + 4
                length = np.int64(type_len) * 4
                nxt = payload + length
            if payload + length > end:
                error[s] = ERR_OVERRUN
                error_offset[s] = p
                break
            ts += delta
            ts_out[n] = np.int64(ts)
            off_out[n] = payload
            len_out[n] = length
            n += 1
            p = nxt
    return n


def decode_subbuffers(
    buf: np.ndarray,
    subbuf_size: int,
    commit_size: int = 8,
    data_offset: int | None = None,
    big_endian: bool = False,
) -> SubbufRecords:
    """Decode every whole sub-buffer of `buf` (trailing partial bytes are ignored)."""
    if commit_size not in (4, 8):
        raise ValueError(f"commit size {commit_size}")
    if data_offset is None:
        data_offset = 8 + commit_size
    buf = np.ascontiguousarray(buf, dtype=np.uint8)
    nsub = len(buf) // subbuf_size
    cap = nsub * ((subbuf_size - data_offset) // 8 + 1)
    ts = np.empty(cap, np.int64)
    off = np.empty(cap, np.int64)
    length = np.empty(cap, np.int32)
    missed = np.zeros(nsub, np.bool_)
    lost = np.zeros(nsub, np.int64)
    error = np.zeros(nsub, np.int8)
    error_offset = np.full(nsub, -1, np.int64)
    n = _walk(buf, nsub, subbuf_size, commit_size, data_offset, big_endian,
              ts, off, length, missed, lost, error, error_offset)
    return SubbufRecords(ts[:n], off[:n], length[:n], missed, lost, error, error_offset)
