"""The compiled record walker: perf.data records in, arrays of sample fields out.

`walk_records` steps over `{u32 type, u16 misc, u16 size}` records in a uint8 buffer
(docs/formats.md §5) and, without creating a Python object per record, fills:

- `samples`: one row per SAMPLE of a wanted attribute (columns `S_*`): where its RAW
  payload and callchain are, its time, pid/tid, cpu, attribute;
- `comms` / `forks` / `kmaps`: COMM records (where the name is), FORK records (child and
  parent thread), kernel MMAP/MMAP2 records (pid -1; where the record is);
- `lost`: LOST / LOST_SAMPLES counts per CPU (last slot: CPU unknown);
- `counts` and `state`: per-record-type and per-attribute tallies, FINISHED_ROUND times.

It stops when an output is full, at the end of the buffer, at a record it leaves to
Python (attributes, tracing data, features, compressed records; few per file), or at
a record header that cannot be right. Every step advances by the record's size, which
is at least 8, so a corrupt file cannot make it loop.
"""

from __future__ import annotations

import numpy as np

from ingest.kernels import helper, kernel
from ingest.perf_abi import (
    FORMAT_GROUP,
    FORMAT_ID,
    FORMAT_LOST,
    FORMAT_TOTAL_TIME_ENABLED,
    FORMAT_TOTAL_TIME_RUNNING,
    RECORD_AUXTRACE,
    RECORD_COMM,
    RECORD_COMPRESSED,
    RECORD_COMPRESSED2,
    RECORD_FINISHED_ROUND,
    RECORD_FORK,
    RECORD_HEADER_ATTR,
    RECORD_HEADER_FEATURE,
    RECORD_HEADER_TRACING_DATA,
    RECORD_KSYMBOL,
    RECORD_LOST,
    RECORD_LOST_SAMPLES,
    RECORD_MMAP,
    RECORD_MMAP2,
    RECORD_SAMPLE,
    SAMPLE_ADDR,
    SAMPLE_CALLCHAIN,
    SAMPLE_CPU,
    SAMPLE_ID,
    SAMPLE_IDENTIFIER,
    SAMPLE_IP,
    SAMPLE_PERIOD,
    SAMPLE_RAW,
    SAMPLE_READ,
    SAMPLE_STREAM_ID,
    SAMPLE_TID,
    SAMPLE_TIME,
)

# columns of `samples`
S_REC, S_ATTR, S_TIME, S_PID, S_TID, S_CPU, S_RAW_OFF, S_RAW_LEN, S_CC_OFF, S_CC_NR = range(10)
SAMPLE_COLUMNS = 10
# columns of `comms`: record offset, time, pid, tid, name offset, name length
C_REC, C_TIME, C_PID, C_TID, C_NAME_OFF, C_NAME_LEN = range(6)
COMM_COLUMNS = 6
# columns of `forks`: record offset, time, child pid, child tid, parent tid
F_REC, F_TIME, F_PID, F_TID, F_PTID = range(5)
FORK_COLUMNS = 5

# slots of `state` (carried from call to call)
ST_MAX_TIME = 0  # latest sample time seen
ST_ROUND_TIME = 1  # ST_MAX_TIME at the last FINISHED_ROUND
ST_FLUSH_TIME = 2  # ST_MAX_TIME at the FINISHED_ROUND before: safe to emit up to here
ST_ROUNDS = 3
ST_BAD_SAMPLES = 4  # samples whose fields run past the record
ST_FIRST_BAD = 5  # file offset of the first of those (-1: none)
ST_UNKNOWN_ID = 6  # samples whose id names no attribute
ST_NO_TIME = 7  # samples without a time (ordering cannot be restored for them)
STATE_SLOTS = 8

#: sample_type bits whose fields a sample_id_all trailer carries (perf_event.h sample_id)
TRAILER_BITS = SAMPLE_TID | SAMPLE_TIME | SAMPLE_ID | SAMPLE_STREAM_ID | SAMPLE_CPU \
    | SAMPLE_IDENTIFIER

# how a record names its attribute (id_mode / trailer_mode)
ID_SINGLE = 0  # one attribute (or all alike): no lookup
ID_IDENTIFIER = 1  # SAMPLE_IDENTIFIER: first u64 of a sample, last u64 of a trailer
ID_AT_POS = 2  # SAMPLE_ID at a word position common to all attributes

# what walk_records stopped on
STOP_END = 0
STOP_FULL = 1
STOP_SPECIAL = 2  # a record for Python at `pos`
STOP_BAD_HEADER = 3  # size < 8 at `pos`
STOP_INCOMPLETE = 4  # the record at `pos` runs past the end of the buffer

#: record types handed back to Python
SPECIAL_TYPES = (
    RECORD_KSYMBOL,
    RECORD_HEADER_ATTR,
    RECORD_HEADER_TRACING_DATA,
    RECORD_HEADER_FEATURE,
    RECORD_COMPRESSED,
    RECORD_COMPRESSED2,
)
_SPECIAL = np.zeros(256, np.bool_)
_SPECIAL[list(SPECIAL_TYPES)] = True


@helper(inline="always")
def uint_at(buf, off, n, big):
    """Unsigned n-byte integer at `off` in the file's byte order (perf_stacks reads
    callchain words with it too)."""
    v = np.uint64(0)
    if big:
        for i in range(n):
            v = (v << np.uint64(8)) | np.uint64(buf[off + i])
    else:
        for i in range(n - 1, -1, -1):
            v = (v << np.uint64(8)) | np.uint64(buf[off + i])
    return v


@helper()
def _attr_of(ident, id_keys, id_attr):
    """Attribute index of sample id `ident`, or -1. Id 0 is the first attribute: perf
    writes synthesized records (COMM, MMAP of threads that existed before recording)
    with zeroed sample ids and maps id 0 to its first event (evlist__event2evsel)."""
    if ident == 0:
        return 0
    i = np.searchsorted(id_keys, ident)
    if i < id_keys.shape[0] and id_keys[i] == ident:
        return id_attr[i]
    return -1


@helper()
def _trailer_words(st):
    """u64 words of the sample_id_all trailer for sample_type `st`."""
    n = 0
    for bit in (SAMPLE_TID, SAMPLE_TIME, SAMPLE_ID, SAMPLE_STREAM_ID, SAMPLE_CPU,
                SAMPLE_IDENTIFIER):
        if st & bit:
            n += 1
    return n


@helper(inline="always")
def _id_fields(buf, p, end, st, big):
    """The sample id fields a SAMPLE body and a sample_id_all trailer share, from `p`:
    TID, TIME, ADDR (samples only: a trailer's `st` lacks it), ID, STREAM_ID, CPU.
    Returns (position after them, pid, tid, time, cpu); -1 for a field absent or past
    `end`."""
    pid = np.int64(-1)
    tid = np.int64(-1)
    t = np.int64(-1)
    cpu = np.int64(-1)
    if st & SAMPLE_TID:
        if p + 8 <= end:
            pid = np.int64(np.int32(uint_at(buf, p, 4, big)))
            tid = np.int64(np.int32(uint_at(buf, p + 4, 4, big)))
        p += 8
    if st & SAMPLE_TIME:
        if p + 8 <= end:
            t = np.int64(uint_at(buf, p, 8, big))
        p += 8
    if st & SAMPLE_ADDR:
        p += 8
    if st & SAMPLE_ID:
        p += 8
    if st & SAMPLE_STREAM_ID:
        p += 8
    if st & SAMPLE_CPU:
        if p + 8 <= end:
            cpu = np.int64(uint_at(buf, p, 4, big))
        p += 8
    return p, pid, tid, t, cpu


@helper()
def _trailer(buf, rec, size, big, attr_st, attr_sid_all, id_keys, id_attr, trailer_mode,
             out):
    """(time, cpu, trailer bytes) of a non-sample record into out[0:3]; -1 when absent."""
    out[0] = -1
    out[1] = -1
    out[2] = 0
    if trailer_mode < 0:
        return
    a = 0
    if trailer_mode == ID_IDENTIFIER:
        if size < 16:
            return
        a = _attr_of(uint_at(buf, rec + size - 8, 8, big), id_keys, id_attr)
        if a < 0:
            return
    if not attr_sid_all[a]:
        return
    st = attr_st[a] & TRAILER_BITS
    words = _trailer_words(st)
    if 8 + 8 * words > size:
        return
    out[2] = 8 * words
    _, _, _, t, cpu = _id_fields(buf, rec + size - 8 * words, rec + size, st, big)
    out[0] = t
    out[1] = cpu


@helper()
def _read_words(rf, buf, p, big):
    """Bytes taken by a SAMPLE_READ block with read_format `rf` starting at `p`."""
    extra = 0
    if rf & FORMAT_TOTAL_TIME_ENABLED:
        extra += 8
    if rf & FORMAT_TOTAL_TIME_RUNNING:
        extra += 8
    per = 8
    if rf & FORMAT_ID:
        per += 8
    if rf & FORMAT_LOST:
        per += 8
    if rf & FORMAT_GROUP:
        nr = uint_at(buf, p, 8, big)
        if nr > np.uint64(1 << 20):
            return -1
        return 8 + extra + per * np.int64(nr)
    return per + extra


@kernel("u1_ro, i8, i8, b1, u8[::1], u8[::1], b1[::1], b1[::1], u8[::1], i8[::1], i8, i8, i8, "
        "i8[:, ::1], i8[:, ::1], i8[:, ::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1]")
def walk_records(buf, pos, end, big, attr_st, attr_rf, attr_sid_all, attr_wanted,
                 id_keys, id_attr, id_mode, id_pos, trailer_mode,
                 samples, comms, forks, kmaps, lost, type_counts, attr_skipped, state):
    """Walk records from `pos` to `end`; returns (stop reason, pos, n samples, n comms,
    n forks, n kernel mmaps). See the module docstring for the outputs."""
    ns = 0
    nc = 0
    nf = 0
    nk = 0
    tr = np.empty(3, np.int64)
    ncpu = lost.shape[0] - 1
    while True:
        if pos + 8 > end:
            return (STOP_END if pos == end else STOP_INCOMPLETE), pos, ns, nc, nf, nk
        rtype = np.int64(uint_at(buf, pos, 4, big))
        size = np.int64(uint_at(buf, pos + 6, 2, big))
        if size < 8:
            return STOP_BAD_HEADER, pos, ns, nc, nf, nk
        if rtype < 256 and _SPECIAL[rtype]:
            return STOP_SPECIAL, pos, ns, nc, nf, nk
        if rtype == RECORD_AUXTRACE and pos + 16 <= end:
            aux = uint_at(buf, pos + 8, 8, big)  # AUX data follows the record
            if aux > np.uint64(end - pos):
                return STOP_INCOMPLETE, pos, ns, nc, nf, nk
            size += np.int64(aux)
        if pos + size > end:
            return STOP_INCOMPLETE, pos, ns, nc, nf, nk
        if ns == samples.shape[0] or nc == comms.shape[0] or nf == forks.shape[0] \
                or nk == kmaps.shape[0]:
            return STOP_FULL, pos, ns, nc, nf, nk
        type_counts[min(rtype, type_counts.shape[0] - 1)] += 1
        rec = pos
        pos += size
        if rtype == RECORD_SAMPLE:
            a = 0
            if id_mode == ID_IDENTIFIER:
                if size < 16:
                    a = -2
                else:
                    a = _attr_of(uint_at(buf, rec + 8, 8, big), id_keys, id_attr)
            elif id_mode == ID_AT_POS:
                if 8 + 8 * (id_pos + 1) > size:
                    a = -2
                else:
                    a = _attr_of(uint_at(buf, rec + 8 + 8 * id_pos, 8, big), id_keys, id_attr)
            if a == -1:
                state[ST_UNKNOWN_ID] += 1
                continue
            ok = a >= 0
            if ok:
                st = attr_st[a]
                p = rec + 8
                rec_end = rec + size
                raw_off = np.int64(-1)
                raw_len = np.int64(0)
                cc_off = np.int64(-1)
                cc_nr = np.int64(0)
                if st & SAMPLE_IDENTIFIER:
                    p += 8
                if st & SAMPLE_IP:
                    p += 8
                p, pid, tid, t, cpu = _id_fields(buf, p, rec_end, st, big)
                if st & SAMPLE_PERIOD:
                    p += 8
                if st & SAMPLE_READ:
                    if p + 8 > rec_end:
                        ok = False
                    else:
                        n = _read_words(attr_rf[a], buf, p, big)
                        if n < 0:
                            ok = False
                        p += max(n, 0)
                if ok and st & SAMPLE_CALLCHAIN:
                    if p + 8 > rec_end:
                        ok = False
                    else:
                        nr = uint_at(buf, p, 8, big)
                        if nr > np.uint64((rec_end - p) // 8):
                            ok = False
                        else:
                            cc_off = p + 8
                            cc_nr = np.int64(nr)
                            p += 8 + 8 * cc_nr
                if ok and st & SAMPLE_RAW:
                    if p + 4 > rec_end:
                        ok = False
                    else:
                        raw_len = np.int64(uint_at(buf, p, 4, big))
                        raw_off = p + 4
                        p += 4 + raw_len
                ok = ok and p <= rec_end
            if not ok:
                if state[ST_BAD_SAMPLES] == 0:
                    state[ST_FIRST_BAD] = rec
                state[ST_BAD_SAMPLES] += 1
                continue
            if t >= 0:
                if t > state[ST_MAX_TIME]:
                    state[ST_MAX_TIME] = t
            else:
                state[ST_NO_TIME] += 1
            if not attr_wanted[a]:
                attr_skipped[a] += 1
                continue
            row = samples[ns]
            row[S_REC] = rec
            row[S_ATTR] = a
            row[S_TIME] = t
            row[S_PID] = pid
            row[S_TID] = tid
            row[S_CPU] = cpu
            row[S_RAW_OFF] = raw_off
            row[S_RAW_LEN] = raw_len
            row[S_CC_OFF] = cc_off
            row[S_CC_NR] = cc_nr
            ns += 1
        elif rtype == RECORD_FINISHED_ROUND:
            state[ST_FLUSH_TIME] = state[ST_ROUND_TIME]
            state[ST_ROUND_TIME] = state[ST_MAX_TIME]
            state[ST_ROUNDS] += 1
        elif rtype == RECORD_COMM:
            if size < 17:
                continue
            _trailer(buf, rec, size, big, attr_st, attr_sid_all, id_keys, id_attr,
                     trailer_mode, tr)
            name_end = rec + size - tr[2]
            n = 0
            while rec + 16 + n < name_end and buf[rec + 16 + n] != 0:
                n += 1
            row = comms[nc]
            row[C_REC] = rec
            row[C_TIME] = tr[0]
            row[C_PID] = np.int64(np.int32(uint_at(buf, rec + 8, 4, big)))
            row[C_TID] = np.int64(np.int32(uint_at(buf, rec + 12, 4, big)))
            row[C_NAME_OFF] = rec + 16
            row[C_NAME_LEN] = n
            nc += 1
        elif rtype == RECORD_FORK:
            if size < 32:
                continue
            row = forks[nf]
            row[F_REC] = rec
            row[F_TIME] = np.int64(uint_at(buf, rec + 24, 8, big))
            row[F_PID] = np.int64(np.int32(uint_at(buf, rec + 8, 4, big)))
            row[F_TID] = np.int64(np.int32(uint_at(buf, rec + 16, 4, big)))
            row[F_PTID] = np.int64(np.int32(uint_at(buf, rec + 20, 4, big)))
            nf += 1
        elif rtype == RECORD_MMAP or rtype == RECORD_MMAP2:
            if size >= 16 and uint_at(buf, rec + 8, 4, big) == np.uint64(0xFFFFFFFF):
                kmaps[nk] = rec
                nk += 1
        elif rtype == RECORD_LOST or rtype == RECORD_LOST_SAMPLES:
            at = rec + (16 if rtype == RECORD_LOST else 8)
            if at + 8 > rec + size:
                continue
            n_lost = np.int64(uint_at(buf, at, 8, big))
            _trailer(buf, rec, size, big, attr_st, attr_sid_all, id_keys, id_attr,
                     trailer_mode, tr)
            cpu = tr[1]
            lost[cpu if 0 <= cpu < ncpu else ncpu] += n_lost
