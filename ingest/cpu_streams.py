"""Per-CPU ring-buffer data of a trace.dat buffer, read in bounded windows, and the merge kernel.

`CpuStream` yields whole sub-buffers of one CPU as uint8 arrays of about `window` bytes:
straight from the file (v6, v7 uncompressed) or inflated chunk by chunk from a v7
compressed chunk stream (u32 count, then per chunk u32 compressed size, u32 size, data;
docs/formats.md §4). Data cut short by the end of the file ends the stream and sets
`truncated`; data that does not inflate raises `InputError` with the chunk's offset.

`merge_order` is trace-cmd's merge (tracecmd_read_next_data): repeatedly take the head
record with the smallest timestamp, the lowest CPU on ties, keeping each CPU's own order;
`ingest.cpu_merge.merge_rounds` drives it for every per-CPU reader.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ingest.kernels import kernel
from ingest.tracedat_file import CpuData, decompress
from ingest.errors import InputError


class CpuStream:
    """Whole sub-buffers of one CPU, window by window; see the module docstring.

    A window is only valid until the next one is asked for (its memory is reused).
    """

    def __init__(self, path: Path, fd: int, file_size: int, data: CpuData, subbuf: int,
                 compression: str | None, big_endian: bool, window: int) -> None:
        self.path = path
        self.fd = fd
        self.file_size = file_size
        self.data = data
        self.subbuf = subbuf
        self.compression = compression
        self.e = ">" if big_endian else "<"
        self.window = max(window // subbuf, 1) * subbuf
        self.truncated = False
        #: bytes of the file consumed so far (for progress)
        self.consumed = 0
        #: (byte in the window, file offset) of each compressed chunk of the last window
        self.chunks: list[tuple[int, int]] = []

    def _read(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, n, offset)

    def windows(self) -> Iterator[tuple[np.ndarray, int | None]]:
        """(sub-buffers, file offset of the first byte or None when inflated)."""
        if self.compression:
            yield from self._inflated()
        else:
            yield from self._plain()

    def _plain(self) -> Iterator[tuple[np.ndarray, int | None]]:
        start, end = self.data.offset, self.data.offset + self.data.size
        if end > self.file_size:
            self.truncated = True
            end = self.file_size
        pos = start
        # one buffer, refilled in place: the caller copies out what it keeps before asking
        # for the next window (saves allocating and faulting in every window)
        buf = np.empty(min(self.window, max(end - pos, 0)), np.uint8)
        while end - pos >= self.subbuf:
            n = min(self.window, (end - pos) // self.subbuf * self.subbuf)
            got = os.preadv(self.fd, [memoryview(buf)[:n]], pos)
            if got < n:
                self.truncated = True
                n = got // self.subbuf * self.subbuf
                if n == 0:
                    return
            self.consumed = pos + n - start
            yield buf[:n], pos
            pos += n
        if pos < end:
            self.truncated = True  # a partial sub-buffer at the end of the file

    def _inflated(self) -> Iterator[tuple[np.ndarray, int | None]]:
        # the recorded size covers the chunks, not the u32 chunk count before them
        start, end = self.data.offset, self.data.offset + 4 + self.data.size
        if end > self.file_size:
            self.truncated = True
            end = self.file_size
        if self.data.size == 0:
            return
        head = self._read(start, 4)
        if len(head) < 4 or start + 4 > end:
            self.truncated = True
            return
        (count,) = struct.unpack(self.e + "I", head)
        pos = start + 4
        parts: list[bytes] = []
        have = 0
        rest = b""
        chunks: list[tuple[int, int]] = []
        for i in range(count):
            hdr = self._read(pos, 8) if pos + 8 <= end else b""
            if len(hdr) < 8:
                self.truncated = True
                break
            zsize, usize = struct.unpack(self.e + "II", hdr)
            if pos + 8 + zsize > end:
                self.truncated = True
                break
            try:
                chunk = decompress(self.compression, self._read(pos + 8, zsize), usize)
            except ValueError as e:
                raise InputError(self.path, f"CPU {self.data.cpu} data chunk {i}: {e}",
                                 where=f"offset {pos}") from None
            chunks.append((len(rest) + have, pos))
            pos += 8 + zsize
            self.consumed = pos - start
            parts.append(chunk)
            have += len(chunk)
            if have >= self.window:
                self.chunks = chunks
                rest = yield from self._emit(rest, parts)
                parts, have, chunks = [], 0, []
        self.chunks = chunks
        rest = yield from self._emit(rest, parts)
        if rest:
            self.truncated = True

    def chunk_at(self, byte: int) -> int:
        """File offset of the compressed chunk that inflated to `byte` of the last window."""
        return max((off for start, off in self.chunks if start <= byte), default=-1)

    def _emit(self, rest: bytes, parts: list[bytes]):  # noqa: ANN202 - generator helper
        data = rest + b"".join(parts)
        whole = len(data) // self.subbuf * self.subbuf
        if whole:
            yield np.frombuffer(data, np.uint8, whole), None
        return data[whole:]


@kernel("i8[::1], i8[::1], i8[::1], b1[::1], i8[::1]")
def _merge(ts, starts, ends, live, out_pos):
    pos = starts.copy()
    n = 0
    ncpu = len(starts)
    while True:
        best = -1
        best_ts = 0
        for c in range(ncpu):
            if pos[c] < ends[c]:
                t = ts[pos[c]]
                if best < 0 or t < best_ts:
                    best = c
                    best_ts = t
            elif live[c]:
                return n, pos  # this CPU's next record is not read yet
        if best < 0:
            return n, pos
        out_pos[n] = pos[best]
        n += 1
        pos[best] += 1


def merge_order(ts: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge the per-CPU runs `ts[starts[c]:ends[c]]` as far as the data allows.

    `live[c]` is True while CPU c has records not yet in `ts`: the merge stops when such
    a CPU's run is used up. Returns the positions (into `ts`) in merged order and the
    position each run reached.
    """
    out = np.empty(int((ends - starts).sum()), np.int64)
    n, pos = _merge(ts, starts.astype(np.int64), ends.astype(np.int64), live, out)
    return out[:n], pos
