"""perf's HEADER_TRACING_DATA blob: the event formats a perf.data carries for tracepoints.

Layout (docs/formats.md §5; tools/perf/util/trace-event-read.c trace_report): magic
`17 08 44 "tracing"`, version string (`0.5`/`0.6`), endian byte, long size byte, u32
page size, `header_page` / `header_event` texts, ftrace formats, event formats per
system, kallsyms (u32 size + text), printk formats (u32 size + text) and, from version
0.6, saved cmdlines (u64 size + text) — the trace.dat v6 header steps 1-8. The format
texts go through `ingest.event_format`, shared with trace.dat. Only what perf.data needs
is kept: the event formats, byte order, page size and kallsyms; the other sections are
only checked to fit (threads are named by COMM records, not saved cmdlines).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ingest.event_format import EventFormat, FormatError, parse_format

MAGIC = b"\x17\x08\x44tracing"


class TracingDataError(ValueError):
    """The blob is damaged; the message names the offset within it and what is wrong."""


@dataclass
class TracingData:
    """What the tracing data says: event formats, byte order, page size, kallsyms text."""

    version: str
    big_endian: bool
    page_size: int
    formats: list[EventFormat] = field(default_factory=list)
    kallsyms: bytes = b""


class _Blob:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.e = "<"

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise TracingDataError(f"offset {self.pos}: {what} runs past the end of the "
                                   f"tracing data ({n} bytes needed, "
                                   f"{len(self.data) - self.pos} left)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def num(self, size: int, what: str) -> int:
        return struct.unpack(self.e + {4: "I", 8: "Q"}[size], self.take(size, what))[0]

    def text(self, size: int, what: str) -> str:
        return self.take(self.num(size, f"{what} size"), what).decode("utf-8", "replace")

    def cstr(self, what: str) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise TracingDataError(f"offset {self.pos}: {what} has no terminating NUL")
        out = self.data[self.pos : end].decode("utf-8", "replace")
        self.pos = end + 1
        return out


def parse_tracing_data(data: bytes) -> TracingData:
    """Decode a HEADER_TRACING_DATA blob (TracingDataError when it is damaged)."""
    b = _Blob(data)
    if b.take(10, "magic") != MAGIC:
        raise TracingDataError("offset 0: bad magic (expected \\x17\\x08\\x44tracing)")
    version = b.cstr("version")
    big = b.take(1, "endian byte")[0] == 1
    b.e = ">" if big else "<"
    b.take(1, "long size byte")
    td = TracingData(version, big, b.num(4, "page size"))
    if b.take(12, "header_page tag") != b"header_page\0":
        raise TracingDataError(f"offset {b.pos - 12}: expected the header_page tag")
    b.text(8, "header_page")
    if b.take(13, "header_event tag") != b"header_event\0":
        raise TracingDataError(f"offset {b.pos - 13}: expected the header_event tag")
    b.text(8, "header_event")
    for _ in range(b.num(4, "ftrace format count")):
        _add_format(td, b.text(8, "ftrace format"), "ftrace")
    for _ in range(b.num(4, "event system count")):
        system = b.cstr("event system name")
        for _ in range(b.num(4, f"event count of system {system}")):
            _add_format(td, b.text(8, f"event format of system {system}"), system)
    td.kallsyms = b.take(b.num(4, "kallsyms size"), "kallsyms")
    b.take(b.num(4, "printk formats size"), "printk formats")
    if _version_tuple(version) >= (0, 6):
        b.text(8, "saved cmdlines")
    return td


def _add_format(td: TracingData, text: str, system: str) -> None:
    try:
        td.formats.append(parse_format(text, system))
    except FormatError:
        pass  # perf goes on without it too; its samples count as skipped


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in version.split("."))
    except ValueError:
        return (0,)
