"""Opening an input file: checks it is a readable file and undoes gzip, zstd or xz.

Compression is detected from magic bytes, never from the file name.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import zstandard

from ingest.errors import InputError

_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
)


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
        stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
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
            shutil.copyfileobj(s, f, 8 << 20)
        yield out
