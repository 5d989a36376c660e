"""Memory-state snapshots from /proc stored with a recording, and their parsers.

A trace only tells what happened to the pages it saw; the snapshots tell the rest: zone
layout (`zoneinfo`), free blocks per order (`buddyinfo`, `pagetypeinfo`), totals
(`meminfo`), and with `kpageflags` the state of every page frame at the start, so the
replay engine can start from the real memory state and check its end state against the
kernel's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zstandard

from replay.dataset import DatasetWriter

#: /proc files copied at the start and at the end of a recording
PROC_FILES = ("buddyinfo", "pagetypeinfo", "zoneinfo", "meminfo")

#: the compressed /proc/kpageflags image (one little-endian u64 of KPF_* bits per pfn)
KPAGEFLAGS = "start-kpageflags.zst"

#: include/uapi/linux/kernel-page-flags.h: the page is a free buddy block's page
KPF_BUDDY = 10
#: the pfn has no struct page (a hole in the memory map)
KPF_NOPAGE = 20

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


def read_kpageflags(path: Path) -> np.ndarray:
    """The KPF_* bits per pfn (uint64 array indexed by pfn) of a kpageflags image."""
    with open(path, "rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f).read()
    return np.frombuffer(data, dtype="<u8")


def parse_buddyinfo(text: str) -> dict[tuple[int, str], list[int]]:
    """`/proc/buddyinfo` as {(node, zone): free blocks per order}."""
    out = {}
    for line in text.splitlines():
        head, sep, counts = line.partition("zone")
        if not sep or not head.startswith("Node"):
            continue
        node = int(head.split()[1].rstrip(","))
        zone, *nums = counts.split()
        out[(node, zone)] = [int(n) for n in nums]
    return out
