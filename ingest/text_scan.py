"""Compiled scanning of event lines in the ftrace, trace-cmd report and perf script grammar.

All three print an event as `<comm> <pid> [<cpu>] [<flags>] <time>: [<sys>:]<event>: <body>`
(docs/formats.md §6): the kernel and trace-cmd join comm and pid with a dash
(`comm-pid`, the pid is the last `-digits` before the CPU bracket, comm may hold spaces
and dashes) and may add a `(tgid)` column; perf script separates them with spaces (comm
not padded when callchains follow) and names the event `sys:event`. `scan_lines` (numba)
walks each line's bytes once, decodes the body with `decode_body`, and, for perf
callchains, the frame lines (`<hex addr> <symbol+0xoff | [unknown]> (<dso>)`) below a
sample. No regex and no Python object per line.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ingest.kernels import helper, kernel
from ingest.text_values import (
    CANONICAL,
    NAME_DATA,
    NAME_OFF,
    N_FIELDS,
    decode_body,
    lookup,
)
from ingest.schema import (
    CONTEXT_BH_OFF,
    CONTEXT_HARDIRQ,
    CONTEXT_IRQS_OFF,
    CONTEXT_NMI,
    CONTEXT_SOFTIRQ,
)

#: what a line is
KIND_PAGE = 0  # a page event, decoded
KIND_BAD_PAGE = 1  # a page event whose body is malformed
KIND_OTHER = 2  # an event line of another event
KIND_NONE = 3  # not an event line (header, comment, loss marker, garbage)
KIND_FRAME = 4  # a callchain frame line (perf script)
KIND_BLANK = 5

#: `ts_kind` values: how the line printed its time; TS_OVERFLOW: a time past int64
#: nanoseconds (or raw counts), which makes a page-event line malformed
TS_NS, TS_US, TS_RAW, TS_OVERFLOW = 0, 1, 2, 3
#: the largest whole seconds whose nanoseconds fit the int64 `ts_ns`
MAX_TS_SECS = (2**63 - 1) // 1_000_000_000
_INT64_MAX = 2**63 - 1


class Scan(NamedTuple):
    """Per-line results of `scan_lines` (arrays as long as the block's line count)."""

    kind: np.ndarray  # KIND_*
    comm_s: np.ndarray
    comm_e: np.ndarray
    pid: np.ndarray
    cpu: np.ndarray
    context: np.ndarray  # TRACE_FLAG_* bits from the irq-flags column ...
    has_context: np.ndarray  # ... where the line has one
    ts: np.ndarray  # ns (or raw counts)
    ts_kind: np.ndarray  # TS_*
    ev: np.ndarray  # canonical event index into EVENT_NAMES
    name_s: np.ndarray  # event name range (used for lines of other events)
    name_e: np.ndarray
    vals: np.ndarray  # decode_body outputs
    valid: np.ndarray
    gfp_s: np.ndarray
    gfp_e: np.ndarray
    addr: np.ndarray  # frame lines: address, symbol and dso ranges (-1: none)
    sym_s: np.ndarray
    sym_e: np.ndarray
    dso_s: np.ndarray
    dso_e: np.ndarray
    first_frame: np.ndarray  # sample lines: line index of the first frame, and count
    nframes: np.ndarray


@helper(nogil=True)
def _space(c):  # noqa: ANN001, ANN202
    return c == 32 or c == 9


@helper(nogil=True)
def _digit(c):  # noqa: ANN001, ANN202
    return 48 <= c <= 57


@helper(nogil=True)
def _word(c):  # noqa: ANN001, ANN202
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95


@helper(nogil=True)
def _task(buf, i, j):  # noqa: ANN001, ANN202
    """Comm and pid ending before the CPU bracket at j: (comm_s, comm_e, pid) or pid -1."""
    p = j - 1
    while p > i and _space(buf[p]):
        p -= 1
    if buf[p] == 41:  # ')': the tgid column, `(  1234)` or `(-------)`
        q = p - 1
        while q > i and (_digit(buf[q]) or buf[q] == 45 or buf[q] == 32):
            q -= 1
        if buf[q] != 40:
            return 0, 0, -1
        p = q - 1
        while p > i and _space(buf[p]):
            p -= 1
    pe = p + 1
    while p >= i and _digit(buf[p]):
        p -= 1
    if p + 1 == pe or pe - p - 1 > 9 or p < i:
        return 0, 0, -1
    pid = 0
    for k in range(p + 1, pe):
        pid = pid * 10 + (buf[k] - 48)
    if buf[p] == 45:  # ftrace / trace-cmd: comm-pid
        return i, p, pid
    if buf[p] == 47:  # perf script -F pid,tid: comm pid/tid
        p -= 1
        while p >= i and _digit(buf[p]):
            p -= 1
        if p < i:
            return 0, 0, -1
    if not _space(buf[p]):
        return 0, 0, -1
    while p > i and _space(buf[p]):  # perf script: comm, spaces, tid
        p -= 1
    return i, p + 1, pid


def _flag_bits(bits: dict[str, int]) -> np.ndarray:
    """A byte -> context bits table (0 for other bytes)."""
    table = np.zeros(256, np.int64)
    for c, b in bits.items():
        table[ord(c)] = b
    return table


# TRACE_FLAG_* bits of the irq-flags token (kernel trace_print_lat_fmt): its first
# character tells irqs / bottom halves off, its third the hardirq / softirq / NMI context
_IRQS_OFF_BITS = _flag_bits({"d": CONTEXT_IRQS_OFF, "D": CONTEXT_IRQS_OFF | CONTEXT_BH_OFF,
                             "b": CONTEXT_BH_OFF})
_IRQ_CONTEXT_BITS = _flag_bits({"Z": CONTEXT_NMI | CONTEXT_HARDIRQ, "z": CONTEXT_NMI,
                                "H": CONTEXT_HARDIRQ | CONTEXT_SOFTIRQ, "h": CONTEXT_HARDIRQ,
                                "s": CONTEXT_SOFTIRQ})


@helper(nogil=True)
def _context(buf, s):  # noqa: ANN001, ANN202
    """TRACE_FLAG_* bits from the irq-flags token at buf[s]."""
    return _IRQS_OFF_BITS[buf[s]] | _IRQ_CONTEXT_BITS[buf[s + 2]]


@helper(nogil=True)
def _header(buf, s, e, r, out_i, out_ts, ctx):  # noqa: ANN001, ANN202
    """Parse an event line's header; returns the body start, or -1 if it is none.

    out_i[r] gets comm_s, comm_e, pid, cpu, name_s, name_e, ts_kind; out_ts[r] the time;
    ctx[r] the context bits (-1 without an irq-flags column).
    """
    i = s
    while i < e and _space(buf[i]):
        i += 1
    j = i + 1
    while j < e:
        if buf[j] == 91 and _space(buf[j - 1]):  # ' [': a CPU bracket?
            k = j + 1
            cpu = 0
            while k < e and _digit(buf[k]) and k - j < 7:
                cpu = cpu * 10 + (buf[k] - 48)
                k += 1
            if k > j + 1 and k + 1 < e and buf[k] == 93 and _space(buf[k + 1]):
                cs, ce, pid = _task(buf, i, j)
                if pid >= 0:
                    out_i[r, 0] = cs
                    out_i[r, 1] = ce
                    out_i[r, 2] = pid
                    out_i[r, 3] = cpu
                    return _after_cpu(buf, k + 1, e, r, out_i, out_ts, ctx)
        j += 1
    return -1


@helper(nogil=True)
def _after_cpu(buf, i, e, r, out_i, out_ts, ctx):  # noqa: ANN001, ANN202
    while i < e and _space(buf[i]):
        i += 1
    if i < e and not _digit(buf[i]):  # irq-flags token (3.3+; trace-cmd >= 3.3)
        f = i
        while i < e and not _space(buf[i]):
            i += 1
        ctx[r] = _context(buf, f) if i - f >= 4 else -1
        while i < e and _space(buf[i]):
            i += 1
    else:
        ctx[r] = -1
    secs = np.int64(0)
    n = 0
    overflow = False
    while i < e and _digit(buf[i]) and n < 19:
        d = buf[i] - 48
        if secs > (_INT64_MAX - d) // 10:
            overflow = True
        else:
            secs = secs * 10 + d
        i += 1
        n += 1
    if n == 0 or i >= e:
        return -1
    if buf[i] == 46 and secs > MAX_TS_SECS:
        overflow = True
    if buf[i] == 46:  # secs.frac: µs (kernel, trace-cmd) or ns (trace-cmd -t, perf --ns)
        i += 1
        frac = np.int64(0)
        m = 0
        while i < e and _digit(buf[i]) and m < 9:
            frac = frac * 10 + (buf[i] - 48)
            i += 1
            m += 1
        if m == 0:
            return -1
        out_i[r, 6] = 0 if m > 6 else 1
        for _ in range(9 - m):
            frac *= 10
        out_ts[r] = secs * 1_000_000_000 + frac
    else:  # a counter clock (x86-tsc, counter): raw counts
        out_i[r, 6] = 2
        out_ts[r] = secs
    if overflow:
        out_i[r, 6] = TS_OVERFLOW
        out_ts[r] = 0
    if i >= e or buf[i] != 58:
        return -1
    i += 1
    while i < e and _space(buf[i]):
        i += 1
    seg = i
    while i < e:  # `[sys:]event:` - the name is the segment before a ':' + blank
        c = buf[i]
        if c == 58:
            if i + 1 >= e or _space(buf[i + 1]):
                break
            seg = i + 1
        elif not _word(c):
            return -1
        i += 1
    if i >= e or i == seg:
        return -1
    out_i[r, 4] = seg
    out_i[r, 5] = i
    i += 1
    while i < e and _space(buf[i]):
        i += 1
    return i


@helper(nogil=True)
def _frame(buf, s, e, r, addr, sym_s, sym_e, dso_s, dso_e):  # noqa: ANN001, ANN202
    """A callchain line `<hex addr> <symbol+0xoff | [unknown]> [(<dso>)]`; False if not."""
    i = s
    if i >= e or not _space(buf[i]):
        return False
    while i < e and _space(buf[i]):
        i += 1
    a = np.uint64(0)
    n = 0
    while i < e and not _space(buf[i]):
        c = buf[i]
        d = 0
        if 48 <= c <= 57:
            d = c - 48
        elif 97 <= c <= 102:
            d = c - 87
        else:
            return False
        a = (a << np.uint64(4)) | np.uint64(d)
        i += 1
        n += 1
    if n == 0 or n > 16 or i >= e:
        return False
    i += 1
    addr[r] = a
    end = e
    dso_s[r] = -1
    if buf[e - 1] == 41:  # `(dso)` at the end; the dso may hold `(deleted)` itself
        q = e - 2
        depth = 1
        while q > i:
            if buf[q] == 41:
                depth += 1
            elif buf[q] == 40:
                depth -= 1
                if depth == 0:
                    break
            q -= 1
        if depth == 0 and q > i and _space(buf[q - 1]):
            dso_s[r] = q + 1
            dso_e[r] = e - 1
            end = q - 1
    sym_s[r] = i
    sym_e[r] = end
    return True


@kernel("u1_ro, i8[::1], i8[::1], b1", nogil=True)
def scan_lines(buf, starts, ends, frames):  # noqa: ANN001, ANN201
    """Classify and decode every line buf[starts[r]:ends[r]]; the fields of `Scan`."""
    n = len(starts)
    kind = np.full(n, KIND_NONE, np.int8)
    out_i = np.zeros((n, 7), np.int64)
    ts = np.zeros(n, np.int64)
    ctx = np.full(n, -1, np.int16)
    ev = np.zeros(n, np.int8)
    vals = np.zeros((n, N_FIELDS), np.int64)
    valid = np.zeros((n, N_FIELDS), np.bool_)
    gfp_s = np.full(n, -1, np.int64)
    gfp_e = np.full(n, -1, np.int64)
    addr = np.zeros(n, np.uint64)
    sym_s = np.full(n, -1, np.int64)
    sym_e = np.full(n, -1, np.int64)
    dso_s = np.full(n, -1, np.int64)
    dso_e = np.full(n, -1, np.int64)
    first_frame = np.full(n, -1, np.int64)
    nframes = np.zeros(n, np.int32)
    sample = -1
    for r in range(n):
        s = starts[r]
        e = ends[r]
        while e > s and (_space(buf[e - 1]) or buf[e - 1] == 13):
            e -= 1
        if e == s:
            kind[r] = KIND_BLANK
            sample = -1
            continue
        body = _header(buf, s, e, r, out_i, ts, ctx)
        if body < 0:
            if frames and _frame(buf, s, e, r, addr, sym_s, sym_e, dso_s, dso_e):
                kind[r] = KIND_FRAME
                if sample >= 0:  # else below a sample that was not decoded
                    if nframes[sample] == 0:
                        first_frame[sample] = r
                    nframes[sample] += 1
                continue
            sample = -1
            continue
        sample = r
        code = lookup(buf, out_i[r, 4], out_i[r, 5], NAME_DATA, NAME_OFF)
        if code < 0:
            kind[r] = KIND_OTHER
            continue
        ev[r] = CANONICAL[code]
        if out_i[r, 6] == TS_OVERFLOW:
            kind[r] = KIND_BAD_PAGE
        elif decode_body(buf, body, e, ev[r], r, vals, valid, gfp_s, gfp_e):
            kind[r] = KIND_PAGE
        else:
            kind[r] = KIND_BAD_PAGE
    return (kind, out_i[:, 0], out_i[:, 1], out_i[:, 2].astype(np.int32),
            out_i[:, 3].astype(np.int32), np.maximum(ctx, 0).astype(np.uint8), ctx >= 0,
            ts, out_i[:, 6].astype(np.int8), ev, out_i[:, 4], out_i[:, 5], vals, valid,
            gfp_s, gfp_e, addr, sym_s, sym_e, dso_s, dso_e, first_frame, nframes)


def scan(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, frames: bool = False) -> Scan:
    """`scan_lines` with named results."""
    return Scan(*scan_lines(buf, starts, ends, frames))
