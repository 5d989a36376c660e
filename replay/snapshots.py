"""Memory-state snapshots from /proc taken while recording (parsed in `replay.kernel.procfs`).

A trace only tells what happened to the pages it saw; the snapshots tell the rest: zone
layout (`zoneinfo`), free blocks per order (`buddyinfo`, `pagetypeinfo`), totals
(`meminfo`), and with `kpageflags` the state of every page frame at the start, so the
replay engine can start from the real memory state and check its end state against the
kernel's.
"""

from __future__ import annotations

from pathlib import Path

import zstandard

from replay.dataset import KPAGEFLAGS, PROC_FILES, DatasetWriter


_CHUNK = 1 << 20


def take_proc_snapshots(writer: DatasetWriter, when: str, proc: Path = Path("/proc")
                        ) -> list[str]:
    """Copy PROC_FILES into the dataset as `<when>-<file>`; return the files missing."""
    missing = []
    for name in PROC_FILES:
        try:
            data = (proc / name).read_bytes()
        except OSError:
            missing.append(str(proc / name))
            continue
        writer.add_snapshot(f"{when}-{name}", data)
    return missing


def take_kpageflags(writer: DatasetWriter, proc: Path = Path("/proc")) -> int:
    """Stream-compress /proc/kpageflags into the dataset; return the pfns it covers.

    8 bytes per pfn (tens of MB on a large machine): read and compressed in chunks so
    memory stays bounded.
    """
    size = 0
    with open(proc / "kpageflags", "rb", buffering=0) as src, \
            writer.open_snapshot(KPAGEFLAGS) as dst:
        with zstandard.ZstdCompressor(level=3).stream_writer(dst, closefd=False) as z:
            while chunk := src.read(_CHUNK):
                z.write(chunk)
                size += len(chunk)
    return size // 8
