"""Telling trace formats apart from their content, never from the file name."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.source import head
from ingest.errors import InputError

TRACE_DAT_MAGIC = b"\x17\x08\x44tracing"
PERF_MAGICS = (b"PERFILE2", b"2ELIFREP")

# Line shapes of the text formats (docs/formats.md §6), tried in this order.
_TEXT_SHAPES = (
    ("function-graph", re.compile(rb"/\*\s*(mm_page_\w+|mm_pagevec_free):")),
    ("perf-script", re.compile(rb"\[\d{3}\]\s+\S*\s*\d+\.\d+:\s+\w+:\w+:")),
    ("trace-cmd-report", re.compile(rb"^(version = \d+|cpus=\d+|CPU \d+ is empty)", re.M)),
    ("ftrace", re.compile(rb"^# tracer: ", re.M)),
    ("trace-cmd-report", re.compile(rb"\[\d{3}\]\s+\d+\.\d+:\s+\w+:\s", re.M)),
    # with or without the irq-flags token; secs.usecs or raw counter clocks
    ("ftrace", re.compile(rb"\[\d{3}\]\s+(?:[^\s\d]\S*\s+)?\d+(?:\.\d+)?:\s+\w+:", re.M)),
)


def detect_format(path: Path) -> str:
    """The format name of `path` (decompressed), or InputError saying why none fits."""
    data = head(path)
    if not data:
        raise InputError(path, "empty file")
    if data.startswith(TRACE_DAT_MAGIC):
        return "trace.dat"
    if data[:8] in PERF_MAGICS:
        return "perf.data"
    if b"\x00" in data[:4096]:
        raise InputError(path, "binary file that is neither a trace.dat nor a perf.data")
    for name, shape in _TEXT_SHAPES:
        if shape.search(data):
            return name
    raise InputError(
        path,
        "not a recognized trace (expected trace.dat, perf.data, or text from the "
        "kernel's trace file, trace-cmd report or perf script)",
    )
