"""Real trace.dat samples and their `trace-cmd report -t` oracle, for the trace.dat tests.

The oracle is parsed with its own regex, independently of the reader under test.
"""

from __future__ import annotations

import functools
import lzma
import re
import struct
import zlib
from pathlib import Path

from tests.conftest import SAMPLES, rows

#: (trace, report -t of it) — v7 zstd as `trace-cmd extract` wrote it, and the same
#: converted by `trace-cmd convert` to v6 and to v7 uncompressed (sample_traces/README.md)
SAMPLE_PAIRS = {
    "v7-zstd": ("ftrace-thp.dat", "ftrace-thp.report-t.txt.xz"),
    "v6": ("ftrace-thp.v6.dat.xz", "ftrace-thp.v6.report-t.txt.xz"),
    "v7-none": ("ftrace-thp.v7none.dat.xz", "ftrace-thp.v7none.report-t.txt.xz"),
}

_LINE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<s>\d+)\.(?P<ns>\d{9}):"
    r"\s+(?P<event>\w+):\s+(?P<body>.*)$"
)
_KV = re.compile(r"(\w+)=(\S+)")

#: the columns compared with the oracle
COLUMNS = ("cpu", "ts_ns", "pid", "comm", "event", "pfn", "order", "migratetype", "gfp_flags")


def report_rows(text: str, buffer: str = "") -> list[tuple]:
    """Rows of COLUMNS from `trace-cmd report -t` text, in its order (lines of an instance
    `buffer` carry its name as a prefix; trace-cmd 3.1.6 leaves it off the first line
    after a `[N EVENTS DROPPED]` line)."""
    rows = []
    prefix = f"{buffer}: " if buffer else ""
    for line in text.split("\n"):  # not splitlines(): a comm may hold \x1c and such
        if prefix and line.startswith(prefix):
            line = line[len(prefix):]
        m = _LINE.match(line)
        if m is None:
            continue
        kv = dict(_KV.findall(m["body"]))
        pfn = int(kv["pfn"], 0) if "pfn" in kv else None
        if kv.get("page") in ("(nil)", "0", "0x0"):  # failed allocation
            pfn = None
        rows.append((
            int(m["cpu"]), int(m["s"]) * 10**9 + int(m["ns"]), int(m["pid"]), m["comm"],
            m["event"], pfn,
            int(kv["order"]) if "order" in kv else None,
            int(kv["migratetype"]) if "migratetype" in kv else None,
            kv.get("gfp_flags"),
        ))
    return rows


@functools.cache
def oracle(name: str) -> list[tuple]:
    """The oracle rows of sample `name` (a SAMPLE_PAIRS key)."""
    return report_rows(lzma.open(SAMPLES / SAMPLE_PAIRS[name][1], "rt").read())


def dataset_rows(dataset: Path) -> list[tuple]:
    """Rows of COLUMNS of a dataset, in `seq` order."""
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    return rows(dataset, f"SELECT {cols} FROM events ORDER BY seq")


def small_v6(dest: Path) -> Path:
    """The real v6 sample without its kallsyms, printk formats and non-kmem event formats.

    The ring-buffer data and everything the reader needs are byte for byte the sample's;
    the headers shrink from 7 MiB to a few KiB so that truncating at every page boundary
    stays fast. Built by walking the v6 layout (trace-cmd.dat.v6.5.txt) independently.
    """
    raw = lzma.open(SAMPLES / SAMPLE_PAIRS["v6"][0]).read()
    out = bytearray()
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        pos += n
        return raw[pos - n : pos]

    def num(fmt: str) -> int:
        return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

    out += take(10 + 2 + 1 + 1)  # magic, "6\0", endianness, long size
    page = num("I")
    out += struct.pack("<I", page)
    for tag in (12, 13):  # header_page, header_event
        out += take(tag)
        n = num("Q")
        out += struct.pack("<Q", n) + take(n)
    count = num("I")
    out += struct.pack("<I", count)
    for _ in range(count):
        n = num("Q")
        out += struct.pack("<Q", n) + take(n)
    systems = num("I")
    kept = bytearray()
    for _ in range(systems):
        end = raw.index(b"\0", pos)
        name = take(end - pos + 1)
        events = num("I")
        texts = []
        for _ in range(events):
            n = num("Q")
            texts.append(struct.pack("<Q", n) + take(n))
        if name == b"kmem\0":
            kept += name + struct.pack("<I", events) + b"".join(texts)
    out += struct.pack("<I", 1) + kept
    take(num("I"))  # kallsyms
    take(num("I"))  # printk formats
    out += struct.pack("<II", 0, 0)
    n = num("Q")
    out += struct.pack("<Q", n) + take(n)  # saved cmdlines
    cpus = num("I")
    out += struct.pack("<I", cpus)
    tag = take(10)
    out += tag
    assert tag.startswith(b"options")
    while (opt := num("H")) != 0:
        size = num("I")
        out += struct.pack("<HI", opt, size) + take(size)
    out += struct.pack("<H", 0) + take(10)  # flyrecord tag
    pairs = [(num("Q"), num("Q")) for _ in range(cpus)]
    n = num("Q")
    clock = struct.pack("<Q", n) + take(n)  # trace_clock copy (TRACECLOCK option present)
    data_at = -(-(len(out) + 16 * cpus + len(clock)) // page) * page
    at = data_at
    for _, size in pairs:
        out += struct.pack("<QQ", at, size)
        at += size
    out += clock
    out += bytes(data_at - len(out))
    for off, size in pairs:
        out += raw[off : off + size]
    dest.write_bytes(bytes(out))
    return dest


def v7_zlib(dest: Path) -> Path:
    """The real v7 uncompressed sample with its sections and CPU data zlib-compressed.

    trace-cmd on the capture machine was built with zstd only, so no zlib file could be
    captured; this one is the v7-none sample compressed in place the way trace-cmd lays it
    out (trace-cmd.dat.v7.5.txt): each metadata section body becomes u32 compressed size,
    u32 size, zlib data, and each CPU's data a chunk stream (u32 count; per chunk of 10
    sub-buffers: u32 compressed size, u32 size, zlib data), with the BUFFER option's sizes
    updated. Offsets do not move: compressed data is smaller and the rest is zero padding.
    """
    raw = bytearray(lzma.open(SAMPLES / SAMPLE_PAIRS["v7-none"][0]).read())
    assert raw[18:24] == b"none\0\0"
    raw[18:22] = b"zlib"

    def u(fmt: str, at: int) -> int:
        return struct.unpack_from("<" + fmt, raw, at)[0]

    sections, buffers = [], []
    at = u("Q", 24)
    while at:  # the chain of options sections
        pos, at = at + 16, 0
        while True:
            opt, size = u("H", pos), u("I", pos + 2)
            if opt == 0:
                at = u("Q", pos + 6)
                break
            if 16 <= opt <= 21:  # header info ... cmdlines: offset of their section
                sections.append(u("Q", pos + 6))
            elif opt == 3:  # BUFFER
                buffers.append(pos + 6)
            pos += 6 + size
    for s in sections:
        size = u("Q", s + 8)
        body = bytes(raw[s + 16 : s + 16 + size])
        z = zlib.compress(body, 9)
        if 8 + len(z) <= size:
            struct.pack_into("<HQ", raw, s + 2, u("H", s + 2) | 1, 0)  # flags, then fix size
            struct.pack_into("<QII", raw, s + 8, 8 + len(z), len(z), len(body))
            raw[s + 24 : s + 16 + size] = z + bytes(size - 8 - len(z))
    for b in buffers:
        fly = u("Q", b)
        struct.pack_into("<H", raw, fly + 2, u("H", fly + 2) | 1)
        pos = raw.index(b"\0", raw.index(b"\0", b + 8) + 1) + 1  # past name and clock
        page, count = u("I", pos), u("I", pos + 4)
        for i in range(count):
            entry = pos + 8 + 20 * i
            off, size = u("Q", entry + 4), u("Q", entry + 12)
            chunks = [bytes(raw[c : min(c + 10 * page, off + size)])
                      for c in range(off, off + size, 10 * page)]
            stream = struct.pack("<I", len(chunks))
            for chunk in chunks:
                z = zlib.compress(chunk)
                stream += struct.pack("<II", len(z), len(chunk)) + z
            raw[off : off + size] = stream + bytes(size - len(stream))
            struct.pack_into("<Q", raw, entry + 12, len(stream) - 4)  # count word excluded
    dest.write_bytes(bytes(raw))
    return dest
