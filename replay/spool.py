"""Streaming each CPU's ring buffer out of the kernel into a spool file while tracing runs.

One thread per CPU reads `per_cpu/cpuN/trace_pipe_raw`, which hands out whole
sub-buffers (docs/formats.md §2), and appends them to `cpuN.raw`, so memory stays bounded
however long the capture. The threads only copy bytes (the GIL is released in read and
write); decoding happens after the capture, off the traced workload's back.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from ingest.event_format import HeaderPage
from ingest.ringbuffer import COMMIT_MASK

#: how long an idle reader sleeps before looking at its buffer again
_IDLE = 0.1


class CpuSpooler(threading.Thread):
    """Copies one CPU's `trace_pipe_raw` into a spool file until stopped and drained."""

    def __init__(self, cpu: int, pipe: Path, spool: Path, header: HeaderPage,
                 stop: threading.Event) -> None:
        super().__init__(name=f"spool-cpu{cpu}", daemon=True)
        self.cpu = cpu
        self.spool = spool
        self.subbuf_size = header.subbuf_size
        self.data_size = header.data_size
        self.commit_offset = header.commit_offset
        self.commit_size = header.commit_size
        self.stop = stop
        self.subbufs = 0
        self.error: str | None = None
        # Opened here, so that a failure is reported before tracing starts.
        try:
            self._fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            raise OSError(e.errno, f"{pipe}: {e.strerror}") from None

    @property
    def bytes(self) -> int:
        """Bytes spooled so far."""
        return self.subbufs * self.subbuf_size

    def run(self) -> None:
        try:
            with open(self.spool, "wb", buffering=1 << 20) as out:
                self._copy(out)
        except OSError as e:
            self.error = f"cpu {self.cpu}: {e.strerror or e}"
        finally:
            os.close(self._fd)

    def _copy(self, out) -> None:  # noqa: ANN001 - a binary file
        size = self.subbuf_size
        while True:
            # Look at the stop flag *before* reading: a stop requested after an empty read
            # still gets one more read, which drains what was written before tracing_on=0.
            stopping = self.stop.is_set()
            try:
                data = os.read(self._fd, size)
            except BlockingIOError:
                data = b""
            if not data:
                if stopping:
                    return
                self.stop.wait(_IDLE)
                continue
            if len(data) < size:  # never seen; keep the spool a sequence of whole sub-buffers
                data = data.ljust(size, b"\0")
            out.write(data)
            self.subbufs += 1
            # A sub-buffer less than half full means the reader caught up with the writer
            # and the kernel handed out the page being written; reading again at once
            # would spool a mostly empty sub-buffer per event. Let it fill first.
            if not stopping and self._filled(data) < self.data_size // 2:
                self.stop.wait(_IDLE)

    def _filled(self, data: bytes) -> int:
        commit = data[self.commit_offset : self.commit_offset + self.commit_size]
        return int.from_bytes(commit, sys.byteorder) & COMMIT_MASK


def start_spoolers(dir: Path, cpus: list[int], spool_dir: Path, header: HeaderPage,
                   stop: threading.Event) -> list[CpuSpooler]:
    """Open every CPU's trace_pipe_raw (tracefs dir `dir`) and start copying."""
    spoolers: list[CpuSpooler] = []
    try:
        for cpu in cpus:
            spoolers.append(CpuSpooler(cpu, dir / "per_cpu" / f"cpu{cpu}" / "trace_pipe_raw",
                                       spool_dir / f"cpu{cpu}.raw", header, stop))
    except OSError:
        for s in spoolers:
            os.close(s._fd)
        raise
    for s in spoolers:
        s.start()
    return spoolers
