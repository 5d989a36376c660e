"""What the fuzzer feeds and to what: one target per reader and per form of input.

Each target has seeds, cut from the real traces in `sample_traces/` to a few KiB (a cut
input is itself a case a reader must handle: the readers flag it truncated), and a `run`
that puts the fuzzed bytes where the reader expects a file and reads it to the end the way
`replay ingest` does. A `ReplayError` is the expected answer to bad input; any other
exception is a crash.
"""

from __future__ import annotations

import json
import lzma
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.conftest import SAMPLES

#: the largest seed kept: small inputs make every fuzzing run cheap
SEED_BYTES = 8 << 10


@dataclass(frozen=True)
class Target:
    """One fuzzing target: seeds and the function that runs one input in `work`."""

    name: str
    seeds: Callable[[], list[bytes]]
    run: Callable[[bytes, Path], None]


def _raw(name: str) -> bytes:
    """A sample's bytes, decompressed when it is xz (by its magic: members of a perf.data
    directory are compressed one by one without the suffix)."""
    data = (SAMPLES / name).read_bytes()
    return lzma.decompress(data) if data.startswith(b"\xfd7zXZ\x00") else data


def _small_perf(name: str, keep: int = 4096) -> bytes:
    """A real perf.data with its data section cut to the records in its first `keep`
    bytes and the feature sections (event formats, ...) moved up behind them.

    perf_file_header (tools/perf/util/header.h): magic, size, attr_size, then the
    attrs, data and event_types {u64 offset, u64 size} sections and the 256-bit feature
    bitmap; the feature sections' {offset, size} table follows the data section.
    """
    d = _raw(name)
    data_off, data_size = struct.unpack_from("<QQ", d, 40)
    end = data_off
    while end + 8 <= data_off + min(keep, data_size):  # whole records only
        size = struct.unpack_from("<H", d, end + 6)[0]
        if size < 8 or end + size > data_off + keep:
            break
        end += size
    old_end = data_off + data_size
    shift = old_end - end
    bits = int.from_bytes(d[72:104], "little").bit_count()
    table = bytearray(d[old_end : old_end + 16 * bits])
    for k in range(bits):
        off, size = struct.unpack_from("<QQ", table, 16 * k)
        struct.pack_into("<QQ", table, 16 * k, off - shift, size)
    head = bytearray(d[:end])
    struct.pack_into("<Q", head, 48, end - data_off)
    return bytes(head + table + d[old_end + 16 * bits :])


def _lines(data: bytes, limit: int = SEED_BYTES) -> bytes:
    """The first whole lines of a text sample, at most `limit` bytes."""
    return data[: data.rfind(b"\n", 0, limit) + 1]


def read_all(path: Path, fmt: str | None = None, **options: object) -> None:
    """Open `path` as `replay ingest` does and read every batch and the statistics."""
    from ingest import open_reader
    from replay.ingestion import stats_meta

    reader = open_reader(path, fmt, **options)
    for _ in reader.events():
        pass
    for _ in reader.stacks():
        pass
    json.dumps(stats_meta(reader.stats))  # meta.json must be writable from what it found


@cache
def kallsyms() -> Path:
    """The recording machine's kallsyms subset of the perf samples (sample_traces/README):
    given explicitly, perf inputs never read this machine's /proc/kallsyms, so results do
    not depend on the host (and no background read per input piles up)."""
    path = Path(_scratch()) / "perf.kallsyms"
    path.write_bytes(_raw("perf.kallsyms.xz"))
    return path


def _file_target(name: str, seeds: Callable[[], list[bytes]], fmt: str | None = None,
                 perf: bool = False) -> Target:
    def run(data: bytes, work: Path) -> None:
        path = work / "input"
        path.write_bytes(data)
        read_all(path, fmt, **({"kallsyms": kallsyms()} if perf else {}))

    return Target(name, seeds, run)


def _small_v6() -> list[bytes]:
    from tests.tracedat_samples import small_v6

    tmp = Path(_scratch()) / "small_v6.dat"
    data = small_v6(tmp).read_bytes()
    page = 4096
    # the headers (a few KiB without kallsyms and foreign formats) and two data pages
    end = data.index(b"flyrecord") + page
    end = -(-end // page) * page + 2 * page
    return [data[:end]]


def _dir_target(name: str, sample: str) -> Target:
    """A `perf record --threads` directory: `data` kept whole, `data.1` fuzzed."""

    def seeds() -> list[bytes]:
        return [_raw(f"{sample}/data.1")[:SEED_BYTES]]

    def run(data: bytes, work: Path) -> None:
        d = work / "input.perf.data"
        if not d.is_dir():
            d.mkdir()
            (d / "data").write_bytes(_raw(f"{sample}/data"))
            (d / "data.0").write_bytes(_raw(f"{sample}/data.0"))
        (d / "data.1").write_bytes(data)
        read_all(d, kallsyms=kallsyms())

    return Target(name, seeds, run)


@cache
def _scratch() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="replay-fuzz-seeds-")


def _meta_target() -> Target:
    """meta.json of a real dataset, fuzzed, then opened as info, sql and report do."""

    def seeds() -> list[bytes]:
        return [(_dataset() / "meta.json").read_bytes()]

    def run(data: bytes, work: Path) -> None:
        from replay.database import open_datasets
        from replay.dataset import read_meta
        from replay.info import render_info

        ds = work / "ds"
        if not ds.is_dir():
            shutil.copytree(_dataset(), ds)
        (ds / "meta.json").write_bytes(data)
        render_info(ds, read_meta(ds))
        with open_datasets([ds], memory_limit="256MiB") as db:
            db.fetch("SELECT count(*) FROM events")

    return Target("meta", seeds, run)


@cache
def _dataset() -> Path:
    from replay.ingestion import ingest

    src = Path(_scratch()) / "ftrace.txt"
    src.write_bytes(_lines(_raw("ftrace-thp.trace.txt.xz"), 64 << 10))
    return ingest(src, Path(_scratch()) / "seed.replay", quiet=True)


def _zstd_text() -> list[bytes]:
    import zstandard

    return [zstandard.ZstdCompressor().compress(_lines(_raw("ftrace-thp.trace.txt.xz")))]


#: function_graph tracer text: no real capture exists (sample_traces/README.md), so the
#: seed is the documented line shapes (kernel print_graph_comment) of the reader's tests
_FUNCGRAPH = b"""# tracer: function_graph
#     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS
  441.670898 |   1)    bash-6300    |               |  /* mm_page_alloc: page=00000000a2226c3b pfn=0x10a9e6 order=9 migratetype=1 gfp_flags=GFP_TRANSHUGE */
  441.670899 |   1)    bash-6300    |   0.541 us    |  } /* rcu_dynticks_eqs_enter */
  441.670901 |   0)   <idle>-0      |               |      /* mm_page_free_direct: page=00000000a3eae89e pfn=0x186be1 order=2 */
 1)               |    /* mm_page_alloc: page=00000000a2226c3b pfn=0x10a9e6 order=0 migratetype=0 gfp_flags=GFP_KERNEL */
 0)               |      /* sched_switch: prev_comm=a */
 CPU:1 [LOST 3 EVENTS]
"""

TARGETS: dict[str, Target] = {t.name: t for t in (
    _file_target("tracedat-v6", _small_v6),
    _file_target("tracedat-v7", lambda: [_raw("ftrace-thp.dat")[:SEED_BYTES],
                                         _raw("ftrace-thp.v7none.dat.xz")[:SEED_BYTES]]),
    _file_target("perf-file", lambda: [_small_perf("perf-nog.perf.data"),
                                       _small_perf("perf-g.perf.data")], perf=True),
    _file_target("perf-pipe", lambda: [_raw("perf-pipe.perf-pipe.data")[:SEED_BYTES]],
                 perf=True),
    _dir_target("perf-dir", "perf-threads.perf.data"),
    _dir_target("perf-dir-z", "perf-threads-z.perf.data"),
    _file_target("ftrace", lambda: [_lines(_raw("ftrace-thp.trace.txt.xz")),
                                    _lines(_raw("ftrace-tgid.trace.txt.xz"))]),
    _file_target("trace-cmd-report", lambda: [_lines(_raw("ftrace-thp.report.txt.xz")),
                                              _lines(_raw("ftrace-thp.report-t.txt.xz"))]),
    _file_target("perf-script", lambda: [_lines(_raw("perf-g.perf-script.txt.xz")),
                                         _lines(_raw("perf-nog.perf-expected.txt.xz"))]),
    _file_target("function-graph", lambda: [_FUNCGRAPH], fmt="function-graph"),
    _file_target("text-zstd", _zstd_text),
    _meta_target(),
)}
