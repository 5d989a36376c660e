"""Decoding raw per-CPU ring-buffer spools (whole sub-buffers back to back) into events.

`replay record` copies each CPU's `trace_pipe_raw` into a spool file; this turns the
spools into schema batches in time order, through the shared compiled sub-buffer
decoder (`ingest.ringbuffer`), the format-driven entry decoder (`ingest.ftrace_entry`)
and the per-CPU merge (`ingest.cpu_merge`). Memory is bounded by one chunk per CPU.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from ingest.base import IngestStats
from ingest.cpu_merge import merge_by_time
from ingest.event_format import EventFormat, HeaderPage
from ingest.ftrace_entry import EntryDecoder, comm_column
from ingest.ringbuffer import ERROR_TEXT, decode_subbuffers
from replay.schema import event_batch

#: sub-buffers decoded at a time per CPU (with 4 KiB sub-buffers: 16 MiB)
CHUNK_SUBBUFS = 4096


def _cpu_chunks(
    cpu: int,
    spool: Path,
    header: HeaderPage,
    decoder: EntryDecoder,
    comms: Mapping[int, str],
    stats: IngestStats,
    progress: Callable[[int], None],
) -> Iterator[tuple[np.ndarray, pa.RecordBatch]]:
    size = header.subbuf_size
    big = sys.byteorder == "big"  # the spool comes from the running kernel
    first = 0  # index of the chunk's first sub-buffer in the spool
    with open(spool, "rb") as f:
        while data := f.read(CHUNK_SUBBUFS * size):
            buf = np.frombuffer(data, np.uint8)
            rec = decode_subbuffers(buf, size, header.commit_size, header.data_offset, big)
            lost = rec.lost[rec.missed]
            if (lost > 0).any():
                stats.lost_events[cpu] += int(lost[lost > 0].sum())
            if (lost < 0).any():
                stats.lost_unknown.add(cpu)
            for s in np.flatnonzero(rec.error)[:5]:
                stats.add_malformed(f"cpu{cpu} sub-buffer {first + int(s)}",
                                    ERROR_TEXT[int(rec.error[s])])
            stats.malformed += max(0, int((rec.error != 0).sum()) - 5)
            index, cols = decoder.decode(
                buf, rec.offset, rec.length, stats,
                where=lambda i, o=rec.offset, b=first * size: f"cpu{cpu} byte {b + int(o[i])}",
            )
            first += len(buf) // size
            progress(len(data))
            if not len(index):
                continue
            ts = rec.ts[index]
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
    per CPU, corrupt sub-buffers into `stats.malformed`; `progress` gets bytes decoded.
    """
    decoder = EntryDecoder(formats, big_endian=sys.byteorder == "big")
    streams = [_cpu_chunks(cpu, path, header, decoder, comms, stats, progress)
               for cpu, path in sorted(spools.items())]
    return merge_by_time(streams)
