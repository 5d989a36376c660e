"""Text input as blocks of lines in Arrow string arrays, for vectorized parsing.

Text readers never loop over lines in Python: they read a few MiB at a time, find the
line breaks with numpy, and hand the block to Arrow's compute kernels (RE2 regexes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.source import open_stream
from replay.errors import InputError

BLOCK_BYTES = 8 << 20


@dataclass
class LineBlock:
    """Consecutive lines of a text input."""

    first_line: int  # 1-based number of lines[0] in the input
    lines: pa.StringArray  # without their line breaks
    raw_position: int  # bytes of the (possibly compressed) file consumed so far

    def line_numbers(self, index: np.ndarray) -> np.ndarray:
        """1-based input line numbers of the lines at `index` in this block."""
        return self.first_line + np.asarray(index, dtype=np.int64)


def _block(data: bytes) -> pa.StringArray:
    """The lines of `data` (which ends with a line break) without their breaks."""
    buf = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(buf == 10).astype(np.int32)
    offsets = np.empty(len(breaks) + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1:] = breaks + 1
    arr = pa.StringArray.from_buffers(len(breaks), pa.py_buffer(offsets), pa.py_buffer(data))
    arr.validate(full=True)  # raises ArrowInvalid on bytes that are not UTF-8
    return pc.utf8_rtrim(arr, characters="\r\n")


def line_blocks(path: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[LineBlock]:
    """The lines of `path` (decompressed) in blocks of about `block_bytes`."""
    line = 1
    rest = b""
    with open_stream(path) as s:
        while True:
            chunk = s.read(block_bytes)
            data = rest + chunk if rest else chunk
            if not chunk:
                if data:
                    data += b"\n"
                    rest = b""
                else:
                    break
            else:
                cut = data.rfind(b"\n")
                if cut < 0:
                    rest = data
                    continue
                data, rest = data[: cut + 1], data[cut + 1 :]
            nul = data.find(b"\x00")
            if nul >= 0:
                at = line + data.count(b"\n", 0, nul)
                raise InputError(path, "binary data in a text trace", where=f"line {at}")
            try:
                arr = _block(data)
            except pa.ArrowInvalid:
                bad = _first_invalid_utf8_line(data)
                raise InputError(path, "not UTF-8 text", where=f"line {line + bad}") from None
            yield LineBlock(line, arr, s.tell_raw())
            line += len(arr)
            if not chunk:
                break


def _first_invalid_utf8_line(data: bytes) -> int:
    for i, raw in enumerate(data.split(b"\n")):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return i
    return 0
