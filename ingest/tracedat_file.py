"""The structure of a trace-cmd `trace.dat` file, versions 6 and 7 (docs/formats.md §3-4).

`read_layout(path)` reads everything but the ring-buffer data: the fixed header, the
header_page and event formats, saved cmdlines, options, and where each buffer's per-CPU
data lies (and whether it is a compressed chunk stream). It reads the file through an
mmap, checks every length against the file and raises `InputError` naming the file
offset and what was wrong; it never reads the CPU data itself.
"""

from __future__ import annotations

import mmap
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from ingest.event_format import EventFormat, FormatError, HeaderPage, parse_format
from ingest.event_format import parse_header_page
from ingest.sniff import TRACE_DAT_MAGIC
from ingest.errors import InputError
from ingest.schema import canonical_event

# option ids (trace-cmd lib/trace-cmd/include/private/trace-cmd-private.h)
OPT_DONE, OPT_DATE, OPT_CPUSTAT, OPT_BUFFER, OPT_TRACECLOCK, OPT_UNAME = 0, 1, 2, 3, 4, 5
OPT_OFFSET, OPT_CPUCOUNT, OPT_VERSION, OPT_TSC2NSEC = 7, 8, 9, 14
OPT_HEADER_INFO, OPT_FTRACE_EVENTS, OPT_EVENT_FORMATS = 16, 17, 18
OPT_KALLSYMS, OPT_PRINTK, OPT_CMDLINES, OPT_BUFFER_TEXT = 19, 20, 21, 22
SECTION_FLYRECORD = 3
SEC_FL_COMPRESS = 1

_NAME = re.compile(r"^name:\s*(\S+)", re.M)


@dataclass
class CpuData:
    """Where one CPU's ring-buffer data is: file offset and size (compressed size if so)."""

    cpu: int
    offset: int
    size: int


@dataclass
class Buffer:
    """One ftrace instance's flyrecord data ("" = the top instance)."""

    name: str
    page_size: int
    cpus: list[CpuData]
    clock: str | None = None
    compressed: bool = False
    latency: bool = False


@dataclass
class Layout:
    """What a trace.dat says about itself, everything but the event data."""

    version: int
    big_endian: bool
    long_size: int  # userspace long size of the writer (informational)
    page_size: int
    header_page: HeaderPage
    formats: list[EventFormat]
    cmdlines: dict[int, str]
    cpus: int
    compression: str = "none"
    buffers: dict[str, Buffer] = field(default_factory=dict)
    clock: str | None = None
    uname: str | None = None
    tracer_version: str | None = None
    ts_offset: int = 0  # ns added to every timestamp (DATE and OFFSET options)
    tsc2nsec: tuple[int, int, int] | None = None  # (mult, shift, offset)
    file_size: int = 0
    #: the file ends before its end (v7: inside the options that follow the CPU data)
    truncated: bool = False


class _Cursor:
    """Bounds-checked reads from a byte buffer; errors name the file and the offset."""

    def __init__(self, data, path: Path, base: int = 0, big: bool = False,
                 what: str = "") -> None:  # noqa: ANN001 - bytes or mmap
        self.data = data
        self.path = path
        self.base = base  # file offset of data[0] (or of the section for inflated data)
        self.pos = 0
        self.end = len(data)
        self.e = ">" if big else "<"
        self.what = what  # " (inside compressed section ...)" for inflated data

    def fail(self, why: str, pos: int | None = None) -> InputError:
        at = self.base + (self.pos if pos is None else pos)
        return InputError(self.path, why + self.what, where=f"offset {at}")

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise self.fail(f"truncated inside {what} ({n} bytes needed, "
                            f"{max(self.end - self.pos, 0)} left)")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(b)

    def num(self, size: int, what: str) -> int:
        code = {2: "H", 4: "I", 8: "Q"}[size]
        return struct.unpack(self.e + code, self.take(size, what))[0]

    def cstr(self, what: str) -> str:
        i = self.data.find(b"\0", self.pos, self.end)
        if i < 0:
            raise self.fail(f"truncated inside {what} (no terminating NUL)")
        s = bytes(self.data[self.pos : i]).decode("utf-8", "replace")
        self.pos = i + 1
        return s

    def text(self, size_bytes: int, what: str) -> str:
        n = self.num(size_bytes, f"{what} size")
        return self.take(n, what).decode("utf-8", "replace")

    def seek(self, pos: int, what: str) -> None:
        if pos < 0 or pos > self.end:
            raise self.fail(f"{what} at offset {self.base + pos} lies beyond the end of the "
                            f"data ({self.base + self.end} bytes)", pos=self.end)
        self.pos = pos


def decompress(kind: str, data: bytes, size: int) -> bytes:
    """Inflate one trace-cmd compressed block of known uncompressed `size` (ValueError)."""
    try:
        if kind == "zlib":
            out = zlib.decompress(data, bufsize=max(size, 1))
        elif kind == "zstd":
            # trace-cmd writes frames without a content size: give the bound explicitly
            out = zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
        else:
            raise ValueError(f"unknown compression {kind!r}")
    except (zlib.error, zstandard.ZstdError) as e:
        raise ValueError(f"{kind} data does not decompress: {e}") from None
    if len(out) != size:
        raise ValueError(f"{kind} block inflated to {len(out)} bytes, header says {size}")
    return out


def read_layout(path: Path) -> Layout:
    """Parse the headers, options and sections of the trace.dat at `path`."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            raise InputError(path, "empty file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _Parser(path, mm, size).parse()


class _Parser:
    def __init__(self, path: Path, mm, size: int) -> None:  # noqa: ANN001
        self.path = path
        self.mm = mm
        self.size = size
        self.cur = _Cursor(mm, path)

    def parse(self) -> Layout:
        c = self.cur
        if c.take(min(10, self.size), "magic") != TRACE_DAT_MAGIC:
            raise InputError(self.path, "not a trace.dat file (bad magic)", where="offset 0")
        version_text = c.cstr("version string")
        if version_text not in ("6", "7"):
            raise c.fail(f"unsupported trace.dat version {version_text!r} "
                         "(trace-cmd file versions 6 and 7 are supported)", pos=10)
        version = int(version_text)
        big = c.take(1, "endianness byte")[0] == 1
        c.e = ">" if big else "<"
        self.big = big
        long_size = c.take(1, "long size byte")[0]
        page_size = c.num(4, "page size")
        if page_size == 0 or page_size & (page_size - 1):
            raise c.fail(f"page size {page_size} is not a power of two", pos=c.pos - 4)
        self.layout = Layout(version, big, long_size, page_size, None, [], {}, 0,  # type: ignore[arg-type]
                             file_size=self.size)
        if version == 6:
            self._v6()
        else:
            self._v7()
        lay = self.layout
        if lay.header_page is None:
            raise InputError(self.path, "no header_page section (ring-buffer layout unknown)")
        return lay

    # -- shared section bodies (v6 steps 3-8) ------------------------------------------

    def _header_info(self, c: _Cursor) -> None:
        if c.take(12, "header_page tag") != b"header_page\0":
            raise c.fail("expected the header_page tag", pos=c.pos - 12)
        text = c.text(8, "header_page")
        try:
            self.layout.header_page = parse_header_page(text)
        except FormatError as e:
            raise c.fail(f"bad header_page: {e}") from None
        if c.take(13, "header_event tag") != b"header_event\0":
            raise c.fail("expected the header_event tag", pos=c.pos - 13)
        c.text(8, "header_event")

    def _add_format(self, c: _Cursor, text: str, system: str) -> None:
        name = _NAME.search(text)
        # only kmem page events are decoded; the others are only counted by name
        full = name is not None and canonical_event(name.group(1)) is not None
        try:
            self.layout.formats.append(parse_format(text, system, fields=full))
        except FormatError:
            # trace-cmd too goes on without a format it cannot parse; the records of that
            # event will be counted as skipped events of unknown name
            pass

    def _ftrace_events(self, c: _Cursor) -> None:
        for _ in range(c.num(4, "ftrace format count")):
            self._add_format(c, c.text(8, "ftrace event format"), "ftrace")

    def _event_formats(self, c: _Cursor) -> None:
        for _ in range(c.num(4, "event system count")):
            system = c.cstr("event system name")
            for _ in range(c.num(4, f"event count of system {system}")):
                self._add_format(c, c.text(8, f"event format of system {system}"), system)

    def _kallsyms(self, c: _Cursor) -> None:
        c.take(c.num(4, "kallsyms size"), "kallsyms")

    def _printk(self, c: _Cursor) -> None:
        c.take(c.num(4, "printk formats size"), "printk formats")

    def _cmdlines(self, c: _Cursor) -> None:
        for line in c.text(8, "saved cmdlines").splitlines():
            pid, _, comm = line.strip().partition(" ")
            if pid.isdigit():
                self.layout.cmdlines[int(pid)] = comm

    # -- version 6 -----------------------------------------------------------------------

    def _v6(self) -> None:
        c = self.cur
        self._header_info(c)
        self._ftrace_events(c)
        self._event_formats(c)
        self._kallsyms(c)
        self._printk(c)
        self._cmdlines(c)
        lay = self.layout
        lay.cpus = c.num(4, "CPU count")
        tag = c.take(10, "options/flyrecord tag")
        v6_buffers: list[tuple[str, int]] = []
        if tag.startswith(b"options"):
            while True:
                opt = c.num(2, "option id")
                if opt == OPT_DONE:
                    break
                size = c.num(4, "option size")
                start = c.pos
                data = c.take(size, f"option {opt}")
                if opt == OPT_BUFFER:
                    oc = _Cursor(data, self.path, start, self.big)
                    off = oc.num(8, "BUFFER option offset")
                    v6_buffers.append((oc.cstr("BUFFER option name"), off))
                else:
                    self._option(opt, data, start)
            tag = c.take(10, "flyrecord tag")
        if tag.startswith(b"latency"):
            raise c.fail("latency-format trace.dat (text data) holds no ring-buffer events")
        if not tag.startswith(b"flyrecord"):
            raise c.fail(f"expected flyrecord or latency tag, found {tag!r}", pos=c.pos - 10)
        lay.buffers[""] = Buffer("", lay.page_size, self._v6_cpus(c), lay.clock)
        for name, off in v6_buffers:
            bc = _Cursor(self.mm, self.path, 0, self.big)
            bc.seek(off, f"buffer {name!r}")
            if not bc.take(10, f"buffer {name!r} flyrecord tag").startswith(b"flyrecord"):
                raise bc.fail(f"buffer {name!r} does not start with a flyrecord tag", off)
            lay.buffers[name] = Buffer(name, lay.page_size, self._v6_cpus(bc))

    def _v6_cpus(self, c: _Cursor) -> list[CpuData]:
        cpus = []
        for cpu in range(self.layout.cpus):
            off = c.num(8, f"CPU {cpu} data offset")
            size = c.num(8, f"CPU {cpu} data size")
            cpus.append(CpuData(cpu, off, size))
        return cpus

    # -- version 7 -----------------------------------------------------------------------

    def _v7(self) -> None:
        c = self.cur
        lay = self.layout
        lay.compression = c.cstr("compression name")
        c.cstr("compression version")
        if lay.compression not in ("none", "zlib", "zstd"):
            raise c.fail(f"unsupported compression {lay.compression!r} (zlib and zstd are "
                         "supported)")
        self.sections: dict[int, int] = {}
        self.buffer_opts: list[tuple[bytes, int]] = []
        offset = c.num(8, "offset of the first options section")
        seen: list[int] = []
        while offset:
            if offset in seen:
                raise c.fail("options sections form a loop", pos=offset)
            if seen and OPT_EVENT_FORMATS in self.sections and self._cut_at(offset):
                lay.truncated = True  # cut after the headers: keep the complete events
                if not self.buffer_opts:
                    self._recover_top_buffer(self._section_end(seen[-1]))
                break
            seen.append(offset)
            offset = self._options_section(offset)
        for opt, reader in ((OPT_HEADER_INFO, self._header_info),
                            (OPT_FTRACE_EVENTS, self._ftrace_events),
                            (OPT_EVENT_FORMATS, self._event_formats),
                            (OPT_CMDLINES, self._cmdlines)):
            if opt in self.sections:
                reader(self._section(self.sections[opt], opt)[0])
        for data, start in self.buffer_opts:
            self._v7_buffer(data, start)

    def _section_end(self, offset: int) -> int | None:
        """Where the section at `offset` ends, by its header; None when the file ends
        inside the header."""
        if offset + 16 > self.size:
            return None
        (size,) = struct.unpack(("<", ">")[self.big] + "Q", self.mm[offset + 8 : offset + 16])
        return offset + 16 + size

    def _cut_at(self, offset: int) -> bool:
        end = self._section_end(offset)
        return end is None or end > self.size

    def _recover_top_buffer(self, at: int | None) -> None:
        """The file is cut before the options section that follows the CPU data, and with
        it the BUFFER option giving each CPU's offset. Compressed CPU data can still be
        found: trace-cmd writes the top instance's flyrecord section right after the first
        options section, and in it one self-delimiting chunk stream per CPU, in CPU order,
        each starting page-aligned (docs/formats.md §4)."""
        lay = self.layout
        c = _Cursor(self.mm, self.path, 0, self.big)
        c.seek(at or 0, "flyrecord section")
        if c.num(2, "section id") != SECTION_FLYRECORD:
            return
        flags = c.num(2, "section flags")
        c.num(4, "section description")
        size = c.num(8, "section size")
        end = c.pos + size
        if not flags & SEC_FL_COMPRESS:
            raise c.fail("cut before the buffer options that locate its uncompressed CPU "
                         "data", pos=self.size)
        cpus, pos = [], -(-c.pos // lay.page_size) * lay.page_size
        for cpu in range(lay.cpus):
            stream_end = self._chunk_stream_end(pos)
            cpus.append(CpuData(cpu, pos, min(stream_end, end) - pos - 4))
            if stream_end >= self.size:
                break
            pos = -(-stream_end // lay.page_size) * lay.page_size
        lay.buffers[""] = Buffer("", lay.page_size, cpus, lay.clock, compressed=True)

    def _chunk_stream_end(self, pos: int) -> int:
        """Where the chunk stream at `pos` ends (u32 count, then per chunk u32 compressed
        size, u32 size, data); past the file's end when the file cuts it."""
        e = ("<", ">")[self.big]
        if pos + 4 > self.size:
            return self.size + 1
        (count,) = struct.unpack(e + "I", self.mm[pos : pos + 4])
        pos += 4
        for _ in range(count):
            if pos + 8 > self.size:
                return self.size + 1
            (zsize,) = struct.unpack(e + "I", self.mm[pos : pos + 4])
            pos += 8 + zsize
        return pos

    def _section(self, offset: int, want: int) -> tuple[_Cursor, int]:
        """The body of the section at `offset` (inflated when compressed), and its flags."""
        c = _Cursor(self.mm, self.path, 0, self.big)
        c.seek(offset, f"section {want}")
        sec_id = c.num(2, "section id")
        flags = c.num(2, "section flags")
        c.num(4, "section description")
        size = c.num(8, "section size")
        if sec_id != want:
            raise c.fail(f"expected section {want}, found section {sec_id}", pos=offset)
        if want == SECTION_FLYRECORD:
            return c, flags  # the CPU data is located through the BUFFER option
        if not flags & SEC_FL_COMPRESS:
            if c.pos + size > self.size:
                raise c.fail(f"truncated inside section {want} ({size} bytes needed, "
                             f"{self.size - c.pos} left)")
            body = _Cursor(self.mm, self.path, 0, self.big)
            body.pos, body.end = c.pos, c.pos + size
            return body, flags
        at = c.pos
        zsize = c.num(4, f"compressed size of section {want}")
        usize = c.num(4, f"uncompressed size of section {want}")
        data = c.take(zsize, f"compressed section {want}")
        try:
            body = decompress(self.layout.compression, data, usize)
        except ValueError as e:
            raise c.fail(f"section {want}: {e}", pos=at) from None
        return _Cursor(body, self.path, at, self.big,
                       what=f" (in compressed section {want} at offset {offset})"), flags

    def _options_section(self, offset: int) -> int:
        c, _ = self._section(offset, 0)
        while True:
            opt = c.num(2, "option id")
            size = c.num(4, "option size")
            start = c.base + c.pos
            data = c.take(size, f"option {opt}")
            if opt == OPT_DONE:
                if size < 8:
                    raise c.fail("DONE option shorter than 8 bytes")
                return struct.unpack(c.e + "Q", data[:8])[0]
            if opt in (OPT_BUFFER, OPT_BUFFER_TEXT):
                self.buffer_opts.append((data if opt == OPT_BUFFER else b"", start))
            elif OPT_HEADER_INFO <= opt <= OPT_CMDLINES:
                if size >= 8:
                    self.sections[opt] = struct.unpack(c.e + "Q", data[:8])[0]
            else:
                self._option(opt, data, start)

    def _v7_buffer(self, data: bytes, start: int) -> None:
        if not data:  # BUFFER_TEXT: a latency-format instance, no ring-buffer data
            return
        c = _Cursor(data, self.path, start, self.big)
        offset = c.num(8, "BUFFER option offset")
        name = c.cstr("BUFFER option name")
        clock = c.cstr("BUFFER option clock")
        page_size = c.num(4, "BUFFER option page size")
        count = c.num(4, "BUFFER option CPU count")
        cpus = []
        for _ in range(count):
            cpu = c.num(4, "BUFFER option CPU id")
            cpus.append(CpuData(cpu, c.num(8, "CPU data offset"), c.num(8, "CPU data size")))
        if page_size == 0 or page_size & (page_size - 1):
            raise c.fail(f"buffer {name!r} page size {page_size} is not a power of two")
        _, flags = self._section(offset, SECTION_FLYRECORD)
        buf = Buffer(name, page_size, sorted(cpus, key=lambda d: d.cpu), clock,
                     compressed=bool(flags & SEC_FL_COMPRESS))
        self.layout.buffers[name] = buf
        if name == "" and self.layout.clock is None:
            self.layout.clock = clock

    # -- options common to both versions ------------------------------------------------

    def _option(self, opt: int, data: bytes, start: int) -> None:
        lay = self.layout
        text = data.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
        if opt in (OPT_DATE, OPT_OFFSET):
            try:
                value = int(text, 0)
            except ValueError:
                raise InputError(self.path, f"bad {'DATE' if opt == OPT_DATE else 'OFFSET'} "
                                 f"option {text!r}", where=f"offset {start}") from None
            lay.ts_offset += value * 1000 if opt == OPT_DATE else value  # DATE is in µs
        elif opt == OPT_TRACECLOCK:
            for word in text.split():
                if word.startswith("[") and word.endswith("]"):
                    lay.clock = word[1:-1]
        elif opt == OPT_UNAME:
            lay.uname = text
        elif opt == OPT_VERSION:
            lay.tracer_version = text
        elif opt == OPT_CPUCOUNT and len(data) >= 4:
            lay.cpus = struct.unpack(("<", ">")[self.big] + "I", data[:4])[0]
        elif opt == OPT_TSC2NSEC and len(data) >= 16:
            lay.tsc2nsec = struct.unpack(("<", ">")[self.big] + "IIQ", data[:16])
