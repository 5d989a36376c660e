"""The kernel's /proc memory files, parsed: kpageflags (page frame flags).

One home for what the engine and the report read out of /proc snapshots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zstandard

#: include/uapi/linux/kernel-page-flags.h: the page is a free buddy block's page
KPF_BUDDY = 10

_CHUNK = 1 << 20


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
