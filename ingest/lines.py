"""Text input as blocks of whole lines: one byte buffer and the offsets of its lines.

Text readers never loop over lines in Python: they read a few MiB at a time, find the
line breaks with numpy, and hand the block to compiled scanners (ingest/text_scan.py) or
to Arrow's compute kernels (`LineBlock.text`).
"""

from __future__ import annotations

from collections.abc import Iterator
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
                continuation: bytes | None = None) -> Iterator[LineBlock]:
    """The lines of `path` (decompressed) in blocks of about `block_bytes` (BLOCK_BYTES).

    With `continuation` (b"\t" for perf script callchain lines) a line starting with it
    stays in the block of the line before.
    """
    block_bytes = block_bytes or BLOCK_BYTES
    line = 1
    rest = b""
    cut_line = False
    with open_stream(path) as s:
        while True:
            chunk = s.read(block_bytes)
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
                if cut <= 0:
                    rest = data
                    continue
                data, rest = data[:cut], data[cut:]
            nul = data.find(b"\x00")
            if nul >= 0:
                _binary(path, data if line == 1 else b"", line + data.count(b"\n", 0, nul))
            block = _block(line, _utf8(data), s.tell_raw())
            block.cut = not chunk and cut_line
            yield block
            line += len(block.starts)
            if not chunk:
                break
