"""Opening an input file: checks it is a readable file and undoes gzip, zstd or xz.

Compression is detected from magic bytes, never from the file name.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import zstandard

from ingest.errors import InputError

#: chunk size of copies (a pipe spooled to disk, a compressed input inflated)
SPOOL_BYTES = 8 << 20

_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
)


#: the input name that means standard input (`replay ingest -`)
STDIN = Path("-")


def is_stream(path: Path) -> bool:
    """Whether `path` is standard input, a FIFO or a pipe (`<(cat ...)`): bytes that can
    be read once only, from the start, with no size."""
    if path == STDIN:
        return True
    try:
        return stat.S_ISFIFO(path.stat().st_mode)
    except OSError:
        return False


@contextmanager
def spooled(path: Path) -> Iterator[Path]:
    """A path that can be read many times and seeked: `path` itself, or for standard input
    or a FIFO a temporary copy made in SPOOL_BYTES chunks (bounded memory; the disk holds
    the copy), removed afterwards. Format detection reads an input's head, the binary
    readers seek and the source hash reads it again: none of that works on a pipe."""
    if not is_stream(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="replay-stdin-") as tmp:
        out = Path(tmp) / ("stdin" if path == STDIN else path.name)
        try:
            with (open(sys.stdin.fileno(), "rb", closefd=False) if path == STDIN
                  else open(path, "rb")) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, SPOOL_BYTES)
        except OSError as e:
            raise InputError(path, f"cannot be read: {e.strerror}") from None
        yield out


def check_file(path: Path) -> None:
    """Raise InputError unless `path` is an existing, readable regular file."""
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, not a trace file")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise InputError(path, f"cannot be read: {e.strerror}") from None


def compression_of(path: Path) -> str | None:
    """The compression of `path` (gzip, zstd, xz) from its magic bytes, or None."""
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return None


class _ZstdStream:
    """zstd frames decompressed as a stream that, unlike zstandard's stream_reader, fails
    on a frame cut short instead of ending quietly (a cut .zst must not look complete,
    or empty)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self._obj = zstandard.ZstdDecompressor().decompressobj()
        self._in_frame = False
        self._buf = bytearray()
        self._eof = False

    def _fill(self, n: int) -> None:
        while not self._eof and (n < 0 or len(self._buf) < n):
            chunk = self.raw.read(1 << 20)
            if not chunk:
                self._eof = True
                if self._in_frame:
                    raise EOFError("compressed data ends inside a zstd frame (truncated)")
                break
            while chunk:
                self._in_frame = True
                self._buf += self._obj.decompress(chunk)
                chunk = b""
                if self._obj.eof:  # next frame, if any, from what this one left over
                    chunk = self._obj.unused_data
                    self._obj = zstandard.ZstdDecompressor().decompressobj()
                    self._in_frame = False

    def read(self, n: int = -1) -> bytes:
        self._fill(n)
        if n < 0 or n >= len(self._buf):
            out, self._buf = bytes(self._buf), bytearray()
        else:
            out = bytes(self._buf[:n])
            del self._buf[:n]
        return out

    def readinto(self, b) -> int:  # noqa: ANN001 - buffer protocol
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._buf = bytearray()


class _Tracked:
    """A decompressing stream that reports how far into the raw file it has read."""

    def __init__(self, raw: BinaryIO, stream: BinaryIO) -> None:
        self.raw = raw
        self.stream = stream

    def read(self, n: int = -1) -> bytes:
        return self.stream.read(n)

    def readinto(self, b) -> int:  # noqa: ANN001 - buffer protocol
        return self.stream.readinto(b)

    def tell_raw(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.stream.close()
        self.raw.close()


@contextmanager
def open_stream(path: Path) -> Iterator[_Tracked]:
    """The decompressed bytes of `path` as a sequential stream (bounded memory)."""
    kind = compression_of(path)
    raw = open(path, "rb")
    if kind == "gzip":
        stream = gzip.GzipFile(fileobj=raw)
    elif kind == "xz":
        stream = lzma.LZMAFile(raw)
    elif kind == "zstd":
        stream = _ZstdStream(raw)
    else:
        stream = raw
    tracked = _Tracked(raw, stream)
    try:
        yield tracked
    except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError) as e:
        if kind is None:
            raise
        raise InputError(path, f"{kind} data does not decompress: {e}") from None
    finally:
        tracked.close()


def head(path: Path, n: int = 65536) -> bytes:
    """The first `n` decompressed bytes of `path`."""
    with open_stream(path) as s:
        return s.read(n)


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """All of `path` (decompressed), or InputError when it is larger than `limit` bytes:
    a file read whole (a symbol table) must not grow without bound (`/dev/zero`)."""
    with open_stream(path) as s:
        data = s.read(limit + 1)
    if len(data) > limit:
        raise InputError(path, f"larger than {limit >> 20} MiB: not {what}")
    return data


@contextmanager
def seekable(path: Path) -> Iterator[Path]:
    """A path to the uncompressed file: `path` itself, or a temporary decompressed copy.

    Binary readers (trace.dat, perf.data) seek; a compressed input is inflated to a
    temporary file next to nothing else and removed afterwards.
    """
    if compression_of(path) is None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        out = Path(tmp) / path.name
        with open_stream(path) as s, open(out, "wb") as f:
            shutil.copyfileobj(s, f, SPOOL_BYTES)
        yield out
