"""The perf.data container: file header, event attributes with their ids, feature sections.

Covers both layouts perf writes (docs/formats.md §5, tools/perf/util/header.c): the seekable
file (104-byte header, attrs section, data section, feature sections after the data)
and pipe mode (`perf record -o -`: a 16-byte header, then attrs, tracing data and
features as records in the data stream, decoded here too so both layouts share one
parser). All integers are in the writer's byte order, which the magic tells.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ingest.perf_abi import (
    ATTR_FLAG_SAMPLE_ID_ALL,
    ATTR_FLAG_USE_CLOCKID,
    FEAT_ARCH,
    FEAT_CMDLINE,
    FEAT_DIR_FORMAT,
    FEAT_HOSTNAME,
    FEAT_NRCPUS,
    FEAT_OSRELEASE,
    FEAT_TRACING_DATA,
    FEAT_VERSION,
)

MAGIC_LE = b"PERFILE2"
MAGIC_BE = b"2ELIFREP"
FILE_HEADER_SIZE = 104
PIPE_HEADER_SIZE = 16
#: perf_event_attr size of the first ABI revision; a size field of 0 means this
ATTR_SIZE_VER0 = 64
#: the attr fields this reader needs end with the flags word at offset 40
_ATTR_MIN = 48


class PerfFormatError(ValueError):
    """The container is inconsistent; the message says where and what."""


@dataclass
class PerfAttr:
    """One recorded event: what its samples contain and which sample ids name it."""

    type: int
    config: int
    sample_type: int
    read_format: int
    sample_id_all: bool
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    use_clockid: bool = False
    clockid: int = 0


@dataclass
class PerfHeader:
    """Where things are in the file, and the attributes of the seekable layout."""

    big_endian: bool
    pipe: bool
    data_offset: int
    #: end of the data records (clipped to the file; `truncated` says when it was)
    data_end: int
    truncated: bool = False
    attrs: list[PerfAttr] = field(default_factory=list)
    #: feature bit -> (file offset, size), seekable layout only
    feature_sections: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass
class PerfFeatures:
    """The header features the reader keeps (perf report --header names)."""

    hostname: str | None = None
    osrelease: str | None = None
    version: str | None = None
    arch: str | None = None
    nr_cpus_avail: int | None = None
    nr_cpus_online: int | None = None
    cmdline: list[str] | None = None
    tracing_data: bytes | None = None
    #: HEADER_DIR_FORMAT version: the file is DIR/data of a `perf record --threads` dir
    dir_format: int | None = None


def _endian(big: bool) -> str:
    return ">" if big else "<"


def read_header(buf: memoryview, file_size: int) -> PerfHeader:
    """The file header of a perf.data held in `buf` (seekable or pipe layout)."""
    if len(buf) < PIPE_HEADER_SIZE:
        raise PerfFormatError(f"offset 0: file header needs {PIPE_HEADER_SIZE} bytes, "
                              f"file has {len(buf)}")
    magic = bytes(buf[:8])
    if magic not in (MAGIC_LE, MAGIC_BE):
        raise PerfFormatError(f"offset 0: bad magic {magic!r} (expected PERFILE2)")
    big = magic == MAGIC_BE
    e = _endian(big)
    (size,) = struct.unpack_from(e + "Q", buf, 8)
    if size == PIPE_HEADER_SIZE:
        return PerfHeader(big, True, PIPE_HEADER_SIZE, file_size)
    if size != FILE_HEADER_SIZE:
        raise PerfFormatError(f"offset 8: header size {size}, expected 104 or 16")
    if file_size < FILE_HEADER_SIZE:
        raise PerfFormatError(f"offset 0: truncated file header ({file_size} of 104 bytes)")
    (attr_size, a_off, a_size, d_off, d_size, _t_off, _t_size, *bits) = struct.unpack_from(
        e + "11Q", buf, 16
    )
    hdr = PerfHeader(big, False, d_off, d_off + d_size)
    if d_off < FILE_HEADER_SIZE or d_off > file_size:
        raise PerfFormatError(f"offset 40: data section offset {d_off} outside the file")
    if hdr.data_end > file_size:
        hdr.data_end, hdr.truncated = file_size, True
    hdr.attrs = _read_attr_section(buf, e, big, attr_size, a_off, a_size, file_size)
    hdr.feature_sections = _feature_sections(buf, e, bits, d_off + d_size, file_size)
    n_features = sum(bin(b).count("1") for b in bits)
    if len(hdr.feature_sections) < n_features:
        hdr.truncated = True  # some feature sections lie past the end of the file
    return hdr


def _read_attr_section(buf: memoryview, e: str, big: bool, attr_size: int, off: int,
                       size: int, file_size: int) -> list[PerfAttr]:
    if attr_size < _ATTR_MIN + 16 or size % attr_size or off + size > file_size:
        raise PerfFormatError(f"offset 24: attrs section ({off}, {size}) with entries of "
                              f"{attr_size} bytes does not fit the file")
    attrs = []
    for entry in range(off, off + size, attr_size):
        attr, _ = parse_attr(buf, entry, attr_size - 16, big)
        ids_off, ids_size = struct.unpack_from(e + "QQ", buf, entry + attr_size - 16)
        if ids_size % 8 or ids_off + ids_size > file_size:
            raise PerfFormatError(f"offset {entry + attr_size - 16}: attr ids section "
                                  f"({ids_off}, {ids_size}) outside the file")
        attr.ids = np.frombuffer(buf, dtype=e + "u8", count=ids_size // 8,
                                 offset=ids_off).astype(np.uint64)
        attrs.append(attr)
    return attrs


def parse_attr(buf: memoryview, off: int, avail: int, big: bool) -> tuple[PerfAttr, int]:
    """The perf_event_attr at `off` (at most `avail` bytes there) and its size."""
    e = _endian(big)
    if avail < _ATTR_MIN:
        raise PerfFormatError(f"offset {off}: event attribute needs {_ATTR_MIN} bytes, "
                              f"has {avail}")
    type_, size, config, _period, sample_type, read_format = struct.unpack_from(
        e + "IIQQQQ", buf, off
    )
    size = size or ATTR_SIZE_VER0
    if size < _ATTR_MIN or size > avail:
        raise PerfFormatError(f"offset {off + 4}: event attribute size {size} does not fit "
                              f"its {avail}-byte slot")
    flags = bytes(buf[off + 40 : off + 48])

    def flag(n: int) -> bool:
        # A big-endian compiler allocates bitfields from the most significant bit of each
        # byte: perf's swap_bitfield (tools/perf/util/session.c) reverses bits per byte.
        byte, bit = divmod(n, 8)
        return bool(flags[byte] >> ((7 - bit) if big else bit) & 1)

    attr = PerfAttr(type_, config, sample_type, read_format, flag(ATTR_FLAG_SAMPLE_ID_ALL))
    if size >= 96 and flag(ATTR_FLAG_USE_CLOCKID):
        attr.use_clockid = True
        (attr.clockid,) = struct.unpack_from(e + "i", buf, off + 92)
    return attr, size


def _feature_sections(buf: memoryview, e: str, bits: list[int], table: int,
                      file_size: int) -> dict[int, tuple[int, int]]:
    """feature bit -> (offset, size), from the section table after the data section."""
    present = [b for b in range(256) if bits[b // 64] >> (b % 64) & 1]
    sections = {}
    for i, feat in enumerate(present):
        at = table + 16 * i
        if at + 16 > file_size:
            break  # truncated: the features that are cut off are simply absent
        off, size = struct.unpack_from(e + "QQ", buf, at)
        if off + size <= file_size:
            sections[feat] = (off, size)
    return sections


def read_features(buf: memoryview, hdr: PerfHeader) -> PerfFeatures:
    """The features of the seekable layout, from their sections."""
    feats = PerfFeatures()
    for feat, (off, size) in hdr.feature_sections.items():
        apply_feature(feats, feat, bytes(buf[off : off + size]), hdr.big_endian)
    return feats


def apply_feature(feats: PerfFeatures, feat: int, data: bytes, big: bool) -> None:
    """Decode one feature section (or HEADER_FEATURE record body) into `feats`."""
    e = _endian(big)
    try:
        if feat == FEAT_TRACING_DATA:
            feats.tracing_data = data
        elif feat == FEAT_HOSTNAME:
            feats.hostname = _string(data, 0, e)[0]
        elif feat == FEAT_OSRELEASE:
            feats.osrelease = _string(data, 0, e)[0]
        elif feat == FEAT_VERSION:
            feats.version = _string(data, 0, e)[0]
        elif feat == FEAT_ARCH:
            feats.arch = _string(data, 0, e)[0]
        elif feat == FEAT_NRCPUS:
            feats.nr_cpus_avail, feats.nr_cpus_online = struct.unpack_from(e + "II", data)
        elif feat == FEAT_CMDLINE:
            (n,) = struct.unpack_from(e + "I", data)
            pos, words = 4, []
            for _ in range(n):
                word, pos = _string(data, pos, e)
                words.append(word)
            feats.cmdline = words
        elif feat == FEAT_DIR_FORMAT:
            (feats.dir_format,) = struct.unpack_from(e + "Q", data)
    except (struct.error, ValueError):
        pass  # a damaged optional feature is left out, as perf report does


def _string(data: bytes, pos: int, e: str) -> tuple[str, int]:
    """A perf header string: u32 length, then that many NUL-padded bytes."""
    (n,) = struct.unpack_from(e + "I", data, pos)
    if pos + 4 + n > len(data):
        raise ValueError("string runs past its section")
    raw = data[pos + 4 : pos + 4 + n]
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace"), pos + 4 + n
