"""The directory layout of `perf record --threads`: `DIR/data` plus `DIR/data.N` files.

perf (tools/perf/util/data.c, since 5.14) writes the usual file header, attributes,
synthesized records and feature sections to `data`; each recording thread writes its
ring buffers' records, without any header, to its own `data.N`. The HEADER_DIR_FORMAT
feature of `data` (a u64 version, 1) says the other files belong to it: perf reads
`data`'s data section, then every non-empty `data.*` file, and sorts all their records
by time together (session.c, __perf_session__process_dir_events).
"""

from __future__ import annotations

import re
from pathlib import Path

from ingest.source import check_file
from ingest.errors import InputError

MAIN = "data"
_PART = re.compile(r"data\.(\d+)")


def perf_dir_files(path: Path) -> list[Path]:
    """[DIR/data, DIR/data.0, DIR/data.1, ...] of a perf.data directory (parts in number
    order, empty ones left out as perf does); InputError when `path` is not one."""
    main = path / MAIN
    if not main.exists():
        raise InputError(path, "is a directory without a `data` file (perf record "
                               "--threads writes DIR/data and DIR/data.N)")
    check_file(main)
    parts = []
    for p in path.iterdir():
        m = _PART.fullmatch(p.name)
        if m and p.is_file() and p.stat().st_size:
            parts.append((int(m[1]), p))
    return [main, *(p for _, p in sorted(parts))]


def input_files(path: Path) -> list[Path]:
    """The files an input consists of: itself, or a perf.data directory's files."""
    return perf_dir_files(path) if path.is_dir() else [path]
