"""Decoding raw per-CPU ring-buffer spools (whole sub-buffers back to back) into events.

`replay record` copies each CPU's `trace_pipe_raw` into a spool file; this turns the
spools into schema batches in time order, through the shared compiled sub-buffer
decoder (`ingest.ringbuffer`), the format-driven entry decoder (`ingest.ftrace_entry`)
and the per-CPU merge (`ingest.cpu_merge`). Memory is bounded: the CPUs share a fixed
budget of raw bytes decoded at a time.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from ingest.base import IngestStats
from ingest.cpu_merge import damaged_subbuffers, merge_by_time
from ingest.event_format import EventFormat, HeaderPage
from ingest.ftrace_entry import EntryDecoder, comm_column
from ingest.ringbuffer import decode_subbuffers
from ingest.schema import event_batch

#: raw bytes decoded at a time, shared by all CPUs (each CPU's pending chunk is held by
#: the merge, and a decoded chunk takes about 8 times its raw size)
CHUNK_BUDGET = 4 << 20
#: fewest sub-buffers per CPU chunk, however many CPUs
MIN_CHUNK_SUBBUFS = 16


def _cpu_chunks(
    cpu: int,
    spool: Path,
    header: HeaderPage,
    decoder: EntryDecoder,
    comms: Mapping[int, str],
    stats: IngestStats,
    progress: Callable[[int], None],
    chunk_subbufs: int,
) -> Iterator[tuple[np.ndarray, pa.RecordBatch]]:
    size = header.subbuf_size
    big = sys.byteorder == "big"  # the spool comes from the running kernel
    first = 0  # index of the chunk's first sub-buffer in the spool
    with open(spool, "rb") as f:
        while data := f.read(chunk_subbufs * size):
            buf = np.frombuffer(data, np.uint8)
            rec = decode_subbuffers(buf, size, header.commit_size, header.data_offset, big)
            rec.count_lost(stats, cpu)
            damaged_subbuffers(spool, cpu, rec, lambda at, b=first * size: f"byte {b + at}",
                               stats, strict=False)
            index, cols = decoder.decode(
                buf, rec.offset, rec.length, stats,
                where=lambda i, o=rec.offset, b=first * size: f"cpu{cpu} byte {b + int(o[i])}",
            )
            first += len(buf) // size
            progress(len(data))
            ts = rec.ts[index]
            del data, buf, rec  # the raw chunk is not needed while the merge holds this one
            if not len(index):
                continue
            cols["ts_ns"] = ts
            cols["cpu"] = np.full(len(index), cpu, np.int32)
            cols["comm"] = comm_column(cols["pid"], comms)
            yield ts, event_batch(cols, len(index))


def spool_events(
    spools: Mapping[int, Path],
    formats: list[EventFormat],
    header: HeaderPage,
    comms: Mapping[int, str],
    stats: IngestStats,
    progress: Callable[[int], None] = lambda n: None,
) -> Iterator[pa.RecordBatch]:
    """Events of the per-CPU spools (`cpu -> file`) merged in time order.

    Lost events (sub-buffer missed-events flags) are counted into `stats.lost_events`
    per CPU, corrupt sub-buffers into `stats.malformed` (`cpu_merge.damaged_subbuffers`,
    never strict: a recording keeps what it can); `progress` gets bytes decoded.
    """
    decoder = EntryDecoder(formats, big_endian=sys.byteorder == "big")
    per_cpu = max(MIN_CHUNK_SUBBUFS, CHUNK_BUDGET // (max(len(spools), 1) * header.subbuf_size))
    streams = [_cpu_chunks(cpu, path, header, decoder, comms, stats, progress, per_cpu)
               for cpu, path in sorted(spools.items())]
    return merge_by_time(streams)
