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


def kpageflags_free(path: Path) -> np.ndarray:
    """Per pfn, 1 where a kpageflags image says the page is free in the buddy allocator.

    KPF_BUDDY marks every page of a free block, not only its head (stable_page_flags()
    asks is_free_buddy_page() for the others): on Linux 6.18 the free runs it gives,
    cut into aligned blocks, reproduce /proc/buddyinfo. Pages on per-CPU lists are not
    marked (they are allocated as far as the buddy lists are concerned), nor holes.
    """
    parts = []
    rest = b""
    with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as z:
        while chunk := z.read(_CHUNK):
            chunk = rest + chunk
            whole = len(chunk) // 8 * 8
            rest = chunk[whole:]
            flags = np.frombuffer(chunk, dtype="<u8", count=whole // 8)
            parts.append(((flags >> np.uint64(KPF_BUDDY)) & np.uint64(1)).astype(np.uint8))
    return np.concatenate(parts) if parts else np.zeros(0, np.uint8)
