"""Reader for perf.data (`perf record -e kmem:... [-g]`, file or pipe layout, -z too).

The file is mapped into memory and walked by the compiled walker (`perf_walk`) in
chunks; each chunk's RAW payloads are decoded by the event formats from the file's own
tracing data (`ftrace_entry`, shared with trace.dat) and its callchains interned into
stack ids (`perf_stacks`). perf writes records only roughly in time order; a
FINISHED_ROUND promises that nothing after it is older than what came before the
previous one, so decoded rows wait in a window and leave it sorted by time (stable,
like perf's ordered_events) once a round makes them safe: memory stays bounded by about
two rounds. Comms come from COMM/FORK records at each sample's time (`perf_threads`);
kernel frames are symbolized at the end (`perf_symbols`).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import zstandard

from ingest.base import IngestStats, Reader
from ingest.event_format import FormatError
from ingest.ftrace_entry import EntryDecoder, NumpyColumns, concat_columns, take_columns
from ingest.perf_abi import (
    ADDRESS_END,
    KSYMBOL_UNREGISTER,
    RECORD_COMPRESSED,
    RECORD_COMPRESSED2,
    RECORD_HEADER_ATTR,
    RECORD_HEADER_FEATURE,
    RECORD_HEADER_TRACING_DATA,
    RECORD_KSYMBOL,
    RECORD_MMAP2,
    SAMPLE_RAW,
    TYPE_TRACEPOINT,
)
from ingest.perf_header import (
    PerfAttr,
    PerfFeatures,
    PerfFormatError,
    apply_feature,
    parse_attr,
    read_features,
    read_header,
)
from ingest.perf_dir import input_files
from ingest.perf_layout import WalkerConfig, attr_clock, walker_config
from ingest.perf_stacks import ChainInterner
from ingest.perf_symbols import ThisMachineAhead, choose_symbols, stack_batches
from ingest.perf_threads import ThreadComms
from ingest.perf_walk import (
    COMM_COLUMNS,
    C_NAME_LEN,
    C_NAME_OFF,
    C_REC,
    C_TID,
    C_TIME,
    FORK_COLUMNS,
    F_PTID,
    F_REC,
    F_TID,
    F_TIME,
    SAMPLE_COLUMNS,
    STATE_SLOTS,
    ST_BAD_SAMPLES,
    ST_FIRST_BAD,
    ST_FLUSH_TIME,
    ST_NO_TIME,
    ST_ROUNDS,
    ST_UNKNOWN_ID,
    STOP_BAD_HEADER,
    STOP_FULL,
    STOP_INCOMPLETE,
    STOP_SPECIAL,
    S_CC_NR,
    S_CC_OFF,
    S_CPU,
    S_RAW_LEN,
    S_RAW_OFF,
    S_REC,
    S_TID,
    S_TIME,
    walk_records,
)
from ingest.source import check_file, seekable
from ingest.tracing_data import TracingData, TracingDataError, parse_tracing_data
from ingest.errors import InputError
from ingest.schema import canonical_event, event_batch

_CAPACITY = 1 << 16  # samples per walker call
_SIDE = 4096  # comm / fork / kernel-mmap rows per walker call
_MAX_CPUS = 4096


class PerfDataReader(Reader):
    """perf.data files from `perf record` of kmem page tracepoints."""

    format = "perf.data"
    options = ("kallsyms",)

    def __init__(self, path: Path, stats: IngestStats, strict: bool = False,
                 kallsyms: Path | None = None) -> None:
        super().__init__(path, stats, strict)
        #: a kallsyms file to symbolize kernel frames with (`ingest --kallsyms`)
        self.kallsyms = Path(kallsyms) if kallsyms is not None else None
        if self.kallsyms is not None:
            check_file(self.kallsyms)
        self._chains = ChainInterner()
        self._threads = ThreadComms()
        self._features = PerfFeatures()
        self._tracing: TracingData | None = None
        self._decoder: EntryDecoder | None = None
        self._attrs: list[PerfAttr] = []
        self._cfg: WalkerConfig | None = None
        self._reloc: tuple[str, int] | None = None
        #: decoded rows waiting for a FINISHED_ROUND (or the end) to let them out sorted
        self._pending: list[NumpyColumns] = []
        self._flushed_until = -(1 << 63)
        self._records: Counter = Counter()
        self._state = np.zeros(STATE_SLOTS, np.int64)
        self._state[ST_FIRST_BAD] = -1
        self._lost = np.zeros(_MAX_CPUS + 1, np.int64)
        self._type_counts = np.zeros(256, np.int64)
        self._samples = np.empty((_CAPACITY, SAMPLE_COLUMNS), np.int64)
        self._comms = np.empty((_SIDE, COMM_COLUMNS), np.int64)
        self._forks = np.empty((_SIDE, FORK_COLUMNS), np.int64)
        self._kmaps = np.empty(_SIDE, np.int64)
        self._symbols_ahead: ThisMachineAhead | None = None
        #: (addr, len, name) of each KSYMBOL registration, in file order
        self._ksymbols: list[tuple[int, int, str]] = []
        self._zstd: zstandard.ZstdDecompressionObj | None = None
        self._zcarry = b""
        #: the files read: the file itself, or a --threads directory's data, data.N
        self._files = input_files(self.path)
        self.size = sum(f.stat().st_size for f in self._files)
        #: while reading a directory's files: rows wait for the final sort (perf's
        #: threads write no FINISHED_ROUND; records of all files merge by time)
        self._hold = False
        #: the file name prefixed to error offsets, and progress before this file
        self._prefix, self._base = "", 0
        self._sizes: list[int] = []  # of the files mapped so far (decompressed)
        self._n_files = 1

    # -- the pass over the file ----------------------------------------------------------

    def events(self) -> Iterator[pa.RecordBatch]:
        main, *parts = self._files
        with self._mapped(main) as (mm, size):
            yield from self._read(mm, size)
        if not self._hold:
            parts = []  # no HEADER_DIR_FORMAT: perf reads `data` only
        for part in parts:
            self._prefix, self._base = f"{part.name} ", self._base + self._sizes[-1]
            self._zstd, self._zcarry = None, b""  # each thread compresses on its own
            with self._mapped(part) as (mm, size):
                yield from self._read_part(mm, size)
        self._hold = False
        yield from self._flush(None)
        self._n_files = 1 + len(parts)
        self._finish_stats()

    @contextmanager
    def _mapped(self, path: Path) -> Iterator[tuple[mmap.mmap, int]]:
        """`path` (decompressed when xz/gzip/zstd) mapped into memory, and its size."""
        with seekable(path) as real, open(real, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise self._fail("empty file" if path == self.path else f"{path.name} is empty")
            self._sizes.append(size)
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            if hasattr(mmap, "MADV_SEQUENTIAL"):
                mm.madvise(mmap.MADV_SEQUENTIAL)  # read ahead; the walk goes forward
            try:
                yield mm, size
            finally:
                try:
                    mm.close()
                except BufferError:
                    pass  # an array still views it; the mapping goes with the last one

    def _fail(self, why: str, where: str | None = None) -> InputError:
        if where is not None and self._prefix:
            where = self._prefix + where
        return InputError(self.path, why, where=where)

    def _read(self, mm: mmap.mmap, size: int) -> Iterator[pa.RecordBatch]:
        view = memoryview(mm)
        try:
            hdr = read_header(view, size)
        except PerfFormatError as e:
            raise self._fail(str(e)) from None
        self.big = hdr.big_endian
        self.stats.format_version = "2 (pipe)" if hdr.pipe else "2"
        self.stats.truncated = hdr.truncated
        self._attrs = list(hdr.attrs)
        if not hdr.pipe:
            self._features = read_features(view, hdr)
            if self._features.tracing_data is None:
                why = ("truncated before its feature sections" if hdr.truncated
                       else "has no HEADER_TRACING_DATA feature")
                raise self._fail(f"perf.data {why}: the event formats needed to decode "
                                 "tracepoint samples are missing")
            self._set_tracing_data(self._features.tracing_data, "HEADER_TRACING_DATA feature")
            if self._features.dir_format not in (None, 1):
                raise self._fail(f"directory data version {self._features.dir_format} "
                                 "(HEADER_DIR_FORMAT; only version 1 is known)")
            self._hold = len(self._files) > 1 and self._features.dir_format is not None
            if self.kallsyms is None and not self._tracing.kallsyms.strip():
                self._symbols_ahead = ThisMachineAhead(self._features.hostname,
                                                       self._features.osrelease)
        del view
        self._configure()
        yield from self._read_part(mm, hdr.data_end, hdr.data_offset)

    def _read_part(self, mm: mmap.mmap, end: int, start: int = 0) -> Iterator[pa.RecordBatch]:
        """Walk the records of one file from `start` to `end`."""
        self._mm, self._released = mm, 0
        buf = np.frombuffer(mm, np.uint8)
        status, pos = yield from self._walk(buf, start, end)
        self.position = self._base + pos
        if status == STOP_INCOMPLETE or self._zcarry:
            self.stats.truncated = True
        elif status == STOP_BAD_HEADER:
            size_field = struct.unpack_from(">H" if self.big else "<H", mm, pos + 6)[0]
            self._damaged(f"offset {pos}", f"record header with size {size_field} (< 8): "
                                            "the records after it cannot be found")
        if not self._hold:
            yield from self._flush(None)
        del buf

    def _walk(self, buf: np.ndarray, pos: int, end: int, nested: bool = False):
        """Walk records of `buf` from `pos` to `end`, yielding sorted batches; returns
        (stop reason, position)."""
        while True:
            cfg = self._cfg
            status, pos, ns, nc, nf, nk = walk_records(
                buf, pos, end, self.big, cfg.sample_type, cfg.read_format, cfg.sample_id_all,
                cfg.wanted, cfg.id_keys, cfg.id_attr, cfg.id_mode, cfg.id_pos,
                cfg.trailer_mode, self._samples, self._comms, self._forks, self._kmaps,
                self._lost, self._type_counts, cfg.skipped, self._state)
            self._take_side_records(buf, nc, nf, nk)
            if ns:
                self._decode(buf, self._samples[:ns], nested)
            if not nested:
                self.position = self._base + pos
                self._release(pos)
            if not self._hold:
                yield from self._flush(int(self._state[ST_FLUSH_TIME]))
            if status == STOP_FULL:
                continue
            if status != STOP_SPECIAL:
                return status, pos
            after = yield from self._special(buf, pos, end, nested)
            if after is None:  # the record runs past `end` (a cut file)
                return STOP_INCOMPLETE, pos
            pos = after

    def _release(self, pos: int) -> None:
        """Drop the mapped pages before `pos` from memory: everything in them has been
        decoded or copied, so resident memory stays bounded however big the file."""
        upto = pos - pos % mmap.PAGESIZE
        if upto - self._released >= 16 << 20 and hasattr(mmap, "MADV_DONTNEED"):
            self._mm.madvise(mmap.MADV_DONTNEED, self._released, upto - self._released)
            self._released = upto

    # -- records the walker hands back ---------------------------------------------------

    def _special(self, buf: np.ndarray, pos: int, end: int, nested: bool):
        """Handle the record at `pos`, yielding what a compressed one releases; returns
        the position after it, or None when the record is incomplete (a record at
        offset 0 made a negative-offset convention loop forever on a cut file)."""
        e = ">" if self.big else "<"
        rtype, _misc, size = struct.unpack_from(e + "IHH", buf, pos)
        if pos + size > end:
            return None
        self._records[rtype] += 1
        body = pos + 8
        if rtype == RECORD_HEADER_ATTR:
            try:
                attr, attr_size = parse_attr(buf.data, body, size - 8, self.big)
            except PerfFormatError as err:
                raise self._fail(f"HEADER_ATTR record: {err}", f"offset {pos}") from None
            n_ids = (size - 8 - attr_size) // 8
            attr.ids = np.frombuffer(buf, e + "u8", n_ids, body + attr_size).astype(np.uint64)
            self._attrs.append(attr)
            self._configure()
        elif rtype == RECORD_HEADER_TRACING_DATA:
            if size < 12:
                raise self._fail("HEADER_TRACING_DATA record too short", f"offset {pos}")
            (blob,) = struct.unpack_from(e + "I", buf, body)
            if pos + size + blob > end:
                return None
            self._set_tracing_data(bytes(buf[pos + size : pos + size + blob]),
                                   f"HEADER_TRACING_DATA record at offset {pos}")
            return pos + size + blob  # the blob follows the record, outside its size
        elif rtype == RECORD_HEADER_FEATURE and size >= 16:
            (feat,) = struct.unpack_from(e + "Q", buf, body)
            apply_feature(self._features, feat, bytes(buf[body + 8 : pos + size]), self.big)
        elif rtype == RECORD_KSYMBOL:
            self._ksymbol(buf, pos, size)
        elif rtype in (RECORD_COMPRESSED, RECORD_COMPRESSED2):
            if nested:
                raise self._fail("compressed record inside compressed data", f"offset {pos}")
            data_off, data_size = body, size - 8
            if rtype == RECORD_COMPRESSED2:
                if size < 16:
                    raise self._fail("COMPRESSED2 record too short", f"offset {pos}")
                (data_size,) = struct.unpack_from(e + "Q", buf, body)
                data_off = body + 8
                if data_off + data_size > pos + size:
                    raise self._fail("COMPRESSED2 record larger than its size",
                                     f"offset {pos}")
            yield from self._inflate(bytes(buf[data_off : data_off + data_size]), pos)
        return pos + size

    def _ksymbol(self, buf: np.ndarray, pos: int, size: int) -> None:
        """A KSYMBOL record: u64 addr, u32 len, u16 ksym_type, u16 flags, NUL-terminated
        name (include/uapi/linux/perf_event.h); registrations name callchain frames."""
        why = f"KSYMBOL record of {size} bytes, shorter than its fields"
        if size >= 8 + 16 + 1:
            addr, length, _ktype, flags = struct.unpack_from(
                (">" if self.big else "<") + "QIHH", buf, pos + 8)
            if flags & KSYMBOL_UNREGISTER:
                return
            why = f"KSYMBOL range {addr:#x} + {length} past the end of the address space"
        if size < 8 + 16 + 1 or addr + length > ADDRESS_END:
            if self.strict:
                raise self._fail(why, f"offset {pos}")
            self.stats.add_malformed(f"{self._prefix}offset {pos}", why)
            return
        name = bytes(buf[pos + 24 : pos + size]).split(b"\0", 1)[0]
        self._ksymbols.append((addr, length, name.decode("utf-8", "replace")))

    def _inflate(self, data: bytes, pos: int) -> Iterator[pa.RecordBatch]:
        """Walk the records inside one compressed record (a zstd stream across records;
        a record cut at the end of one is completed by the next, as perf does)."""
        out = bytearray(self._zcarry)
        try:
            while data:
                if self._zstd is None:
                    self._zstd = zstandard.ZstdDecompressor().decompressobj()
                out += self._zstd.decompress(data)
                data = b""
                if self._zstd.eof:
                    data, self._zstd = self._zstd.unused_data, None
        except zstandard.ZstdError as err:
            raise self._fail(f"compressed record does not decompress: {err}",
                             f"offset {pos}") from None
        buf = np.frombuffer(bytes(out), np.uint8)
        status, at = yield from self._walk(buf, 0, len(buf), nested=True)
        self._zcarry = bytes(buf[at:]) if status == STOP_INCOMPLETE else b""
        if status == STOP_BAD_HEADER:
            self._damaged(f"offset {pos}", "damaged record inside compressed data")

    def _set_tracing_data(self, blob: bytes, where: str) -> None:
        try:
            self._tracing = parse_tracing_data(blob)
        except TracingDataError as e:
            raise self._fail(f"tracing data: {e}", where) from None
        try:
            self._decoder = EntryDecoder(self._tracing.formats, self._tracing.big_endian)
        except FormatError as e:
            raise self._fail(f"tracing data: {e}", where) from None
        self.stats.page_size = self._tracing.page_size
        self._configure()

    def _configure(self) -> None:
        page_ids = set()
        if self._tracing is not None:
            page_ids = {f.id for f in self._tracing.formats if canonical_event(f.name)}
        for a in self._attrs:
            if a.type == TYPE_TRACEPOINT and a.config in page_ids and not a.sample_type & SAMPLE_RAW:
                raise self._fail(f"tracepoint {self._attr_name(a)} was recorded without raw "
                                 "data (sample_type lacks RAW): its fields cannot be decoded")
        old = self._cfg
        try:
            self._cfg = walker_config(self._attrs, page_ids)
        except ValueError as e:
            raise self._fail(str(e)) from None
        if old is not None:
            self._count_skipped(old)

    def _attr_name(self, a: PerfAttr) -> str:
        if a.type == TYPE_TRACEPOINT and self._tracing is not None:
            for f in self._tracing.formats:
                if f.id == a.config:
                    return f"{f.system}:{f.name}"
        return f"attr type {a.type} config {a.config:#x}"

    def _count_skipped(self, cfg: WalkerConfig) -> None:
        for i, n in enumerate(cfg.skipped.tolist()):
            if n:
                self.stats.skipped[self._attr_name(cfg.attrs[i])] += n
        cfg.skipped[:] = 0

    def _take_side_records(self, buf: np.ndarray, nc: int, nf: int, nk: int) -> None:
        # COMM and FORK records in file order: a fork resets the child's comm
        side = sorted([(int(r[C_REC]), 0, r) for r in self._comms[:nc]]
                      + [(int(r[F_REC]), 1, r) for r in self._forks[:nf]], key=lambda x: x[0])
        for _, is_fork, row in side:
            if is_fork:
                self._threads.add_fork(int(row[F_TIME]), int(row[F_TID]), int(row[F_PTID]))
            else:
                name = bytes(buf[row[C_NAME_OFF] : row[C_NAME_OFF] + row[C_NAME_LEN]])
                self._threads.add_comm(int(row[C_TIME]), int(row[C_TID]),
                                       name.decode("utf-8", "replace"))
        e = ">" if self.big else "<"
        for rec in self._kmaps[:nk].tolist():
            rtype, _, size = struct.unpack_from(e + "IHH", buf, rec)
            name_at = rec + (72 if rtype == RECORD_MMAP2 else 40)
            name = bytes(buf[name_at : rec + size]).split(b"\0", 1)[0].decode("utf-8", "replace")
            if name.startswith("[kernel.kallsyms]") and len(name) > 17:
                (pgoff,) = struct.unpack_from(e + "Q", buf, rec + 32)
                self._reloc = (name[17:], pgoff)

    # -- samples -------------------------------------------------------------------------

    def _decode(self, buf: np.ndarray, rows: np.ndarray, nested: bool) -> None:
        if self._decoder is None:
            self.stats.skipped["(no event formats yet)"] += len(rows)
            return
        base = self._prefix + ("in compressed data " if nested else "")
        index, cols = self._decoder.decode_numpy(
            buf, rows[:, S_RAW_OFF], rows[:, S_RAW_LEN], self.stats,
            where=lambda i: f"{base}offset {rows[i, S_REC]}")
        if not len(index):
            return
        rows = rows[index]
        tid = rows[:, S_TID]
        cols["pid"] = (np.where(tid >= 0, tid, cols["pid"][0]).astype(np.int32), None)
        ts = rows[:, S_TIME]
        cols["ts_ns"] = (ts, ts >= 0)
        cpu = rows[:, S_CPU]
        cols["cpu"] = (cpu.astype(np.int32), cpu >= 0)
        sid = self._chains.intern(buf, self.big, rows[:, S_CC_OFF], rows[:, S_CC_NR])
        cols["stack_id"] = (sid, sid >= 0)
        self._pending.append(cols)

    def _flush(self, limit: int | None) -> Iterator[pa.RecordBatch]:
        """Emit the waiting rows with time <= limit (all when None), sorted by time."""
        if not self._pending or (limit is not None and limit <= self._flushed_until):
            return
        chunk_ts = [c["ts_ns"][0] for c in self._pending]
        ts = np.concatenate(chunk_ts)
        order = np.argsort(ts, kind="stable")
        k = len(ts) if limit is None else int(np.searchsorted(ts[order], limit, side="right"))
        if k == 0:
            return
        if limit is not None:
            self._flushed_until = limit
        cols = concat_columns([(c, len(t)) for c, t in zip(self._pending, chunk_ts)])
        out = take_columns(cols, order[:k])
        if k < len(ts):
            self._pending = [take_columns(cols, order[k:])]
        else:
            self._pending = []
        self._threads.advance(limit)
        arrays = self._decoder.to_arrow(out)
        arrays["comm"] = self._threads.comms(out["pid"][0], out["ts_ns"][0])
        yield event_batch(arrays, k)

    # -- statistics ----------------------------------------------------------------------

    def _damaged(self, where: str, why: str) -> None:
        if self.strict:
            raise self._fail(why, where)
        self.stats.truncated = True
        self.stats.add_malformed(self._prefix + where, why)

    def _finish_stats(self) -> None:
        st, feats = self.stats, self._features
        if self._cfg is not None:
            self._count_skipped(self._cfg)
        st.kernel_release = feats.osrelease
        st.cpus = feats.nr_cpus_avail
        st.clock = attr_clock(self._attrs)
        for cpu in np.flatnonzero(self._lost[:_MAX_CPUS]).tolist():
            st.lost_events[cpu] += int(self._lost[cpu])
        if self._lost[_MAX_CPUS]:
            st.lost_events[-1] += int(self._lost[_MAX_CPUS])
        bad = int(self._state[ST_BAD_SAMPLES])
        if bad:  # the compiled walk counts such samples and keeps the first one's offset
            st.add_malformed_many(bad, [(f"offset {self._state[ST_FIRST_BAD]}",
                                         "sample whose fields run past the end of its record")])
        records = Counter({t: int(n) for t, n in enumerate(self._type_counts) if n})
        records.update(self._records)
        st.extra["perf"] = {
            "hostname": feats.hostname,
            "os_release": feats.osrelease,
            "perf_version": feats.version,
            "arch": feats.arch,
            "nr_cpus_online": feats.nr_cpus_online,
            "cmdline": " ".join(feats.cmdline) if feats.cmdline is not None else None,
            "tracing_data_version": self._tracing.version if self._tracing else None,
            # type 255 counts every type >= 255 (none is defined)
            "records_by_type": {str(t): n for t, n in sorted(records.items())},
            "finished_rounds": int(self._state[ST_ROUNDS]),
            "samples_of_unknown_id": int(self._state[ST_UNKNOWN_ID]),
            "samples_without_time": int(self._state[ST_NO_TIME]),
            # perf record --threads: DIR/data and the DIR/data.N files read
            "data_files": self._n_files,
        }

    def stacks(self) -> Iterator[pa.RecordBatch]:
        if self._chains.n_stacks == 0:
            return
        symbols = choose_symbols(
            self.path, self.kallsyms, self._tracing.kallsyms if self._tracing else b"",
            self._features.hostname, self._features.osrelease, self._reloc,
            self._symbols_ahead, self._ksymbols)
        yield from stack_batches(self._chains.frames(), symbols)
        self.stats.extra["stacks"] = {"distinct": self._chains.n_stacks, **symbols.meta()}

