"""Text input as blocks of whole lines: one byte buffer and the offsets of its lines.

Text readers never loop over lines in Python: they read a few MiB at a time, find the
line breaks with numpy, and hand the block to compiled scanners (ingest/text_scan.py) or
to Arrow's compute kernels (`LineBlock.text`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pyarrow as pa

from ingest.sniff import PERF_MAGICS, TRACE_DAT_MAGIC
from ingest.source import open_stream
from ingest.text_values import strings
from ingest.errors import InputError

BLOCK_BYTES = 8 << 20
#: the longest line read: kernel and perf lines are a few hundred bytes; a longer one is
#: counted malformed and skipped without being held in memory
MAX_LINE_BYTES = 1 << 20


@dataclass
class LineBlock:
    """Consecutive whole lines of a text input."""

    first_line: int  # 1-based number of the block's first line in the input
    data: np.ndarray  # uint8 bytes of the lines, valid UTF-8
    starts: np.ndarray  # int64 offset of each line in `data`
    ends: np.ndarray  # int64 end of each line, without its line break
    raw_position: int  # bytes of the (possibly compressed) file consumed so far
    #: the input ends inside the block's last line (no line break): a cut file
    cut: bool = False

    def line_numbers(self, index: np.ndarray) -> np.ndarray:
        """1-based input line numbers of the lines at `index` in this block."""
        return self.first_line + np.asarray(index, dtype=np.int64)

    def text(self, index: np.ndarray) -> pa.StringArray:
        """The lines at `index` as an Arrow string array."""
        return strings(self.data, self.starts[index], self.ends[index])

    def line(self, i: int) -> str:
        """Line `i` of the block."""
        return bytes(self.data[self.starts[i] : self.ends[i]]).decode()


def _utf8(data: bytes) -> bytes:
    """`data`, with bytes that are not UTF-8 (a comm may hold any) replaced by U+FFFD."""
    offsets = np.array([0, len(data)], dtype=np.int32)
    arr = pa.StringArray.from_buffers(1, pa.py_buffer(offsets), pa.py_buffer(data))
    try:
        arr.validate(full=True)
        return data
    except pa.ArrowInvalid:
        return data.decode("utf-8", errors="replace").encode()


def _block(first_line: int, data: bytes, raw_position: int) -> LineBlock:
    """A block of the lines of `data`, which ends with a line break."""
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    return LineBlock(first_line, buf, starts, ends, raw_position)


def _binary(path: Path, head: bytes, line: int) -> NoReturn:
    """Refuse binary data in a text trace, naming the format when it is a known one."""
    if head.startswith(TRACE_DAT_MAGIC):
        raise InputError(path, "a trace.dat file, not text: leave out --input-format or use "
                         "--input-format trace.dat")
    if head[:8] in PERF_MAGICS:
        raise InputError(path, "a perf.data file, not text: leave out --input-format or use "
                         "--input-format perf.data")
    raise InputError(path, "binary data in a text trace", where=f"line {line}")


def _cut(data: bytes, continuation: bytes | None) -> int:
    """Where to end a block of `data`: after its last line break, or, when lines starting
    with `continuation` belong to the line before, after the last break not followed by
    one (the byte after the final break is not read yet, so that break never counts)."""
    cut = data.rfind(b"\n")
    if continuation is None:
        return cut + 1
    cut = data.rfind(b"\n", 0, cut)
    while cut >= 0 and data[cut + 1 : cut + 2] == continuation:
        cut = data.rfind(b"\n", 0, cut)
    return cut + 1


def line_blocks(path: Path, block_bytes: int | None = None,
                continuation: bytes | None = None,
                long_line: Callable[[int], None] | None = None) -> Iterator[LineBlock]:
    """The lines of `path` (decompressed) in blocks of about `block_bytes` (BLOCK_BYTES).

    With `continuation` (b"\t" for perf script callchain lines) a line starting with it
    stays in the block of the line before. A line longer than MAX_LINE_BYTES is dropped
    (unread when it runs past a block, so memory stays bounded on input without line
    breaks) and its number handed to `long_line`, for the reader to count it malformed.
    """
    block_bytes = block_bytes or BLOCK_BYTES
    line = 1
    rest = b""
    skipping = False  # inside an over-long line: drop bytes up to its line break
    cut_line = False  # the input ends inside a line (no final line break)
    with open_stream(path) as s:
        while True:
            chunk = s.read(block_bytes)
            if skipping and chunk:
                nl = chunk.find(b"\n")
                _refuse_binary(path, chunk if nl < 0 else chunk[:nl], line)
                if nl < 0:
                    continue
                chunk, skipping = chunk[nl + 1 :], False
                line += 1
                if not chunk:
                    continue
            data = rest + chunk if rest else chunk
            if not chunk:
                if not data:
                    break
                cut_line = not data.endswith(b"\n")
                if cut_line:
                    data += b"\n"
                rest = b""
            else:
                cut = _cut(data, continuation)
                if cut <= 0 and continuation is not None and len(data) > MAX_LINE_BYTES:
                    cut = _cut(data, None)  # a callchain past the limit is split
                if cut <= 0:
                    if len(data) <= MAX_LINE_BYTES:
                        rest = data
                        continue
                    _refuse_binary(path, data, line)
                    if long_line is not None:
                        long_line(line)
                    rest, skipping = b"", True
                    continue
                data, rest = data[:cut], data[cut:]
            _refuse_binary(path, data, line)
            block = _block(line, _utf8(data), s.tell_raw())
            for i in np.flatnonzero(block.ends - block.starts > MAX_LINE_BYTES).tolist():
                if long_line is not None:
                    long_line(line + i)
                block.ends[i] = block.starts[i]  # read as a blank line
            block.cut = not chunk and cut_line
            yield block
            line += len(block.starts)
            if not chunk:
                break


def _refuse_binary(path: Path, data: bytes, line: int) -> None:
    """InputError when `data` (text from line `line` on) holds a NUL byte."""
    nul = data.find(b"\x00")
    if nul >= 0:
        _binary(path, data if line == 1 else b"", line + data.count(b"\n", 0, nul))
