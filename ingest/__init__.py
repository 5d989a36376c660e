"""Readers: one module per trace format, all yielding batches of one Arrow schema.

`open_reader` picks the reader for a file from its content (or a forced `--input-format`).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from ingest.base import IngestStats, Reader
from ingest.perf_dir import perf_dir_files
from ingest.sniff import detect_format
from ingest.source import check_file
from ingest.errors import InputError

from ingest.cache import source_key, use_for_numba

#: this package's directory: its sources key the numba cache
PACKAGE_DIR = Path(__file__).resolve().parent

use_for_numba(source_key(PACKAGE_DIR))  # before any module imports numba (none above does)

#: format name -> "module:Class", imported only when used
READERS = {
    "ftrace": "ingest.text_ftrace:FtraceTextReader",
    "trace-cmd-report": "ingest.text_ftrace:TraceCmdReportReader",
    "perf-script": "ingest.text_perf:PerfScriptReader",
    "function-graph": "ingest.text_funcgraph:FunctionGraphReader",
    "trace.dat": "ingest.tracedat:TraceDatReader",
    "perf.data": "ingest.perf_data:PerfDataReader",
}


def open_reader(path: Path, fmt: str | None = None, strict: bool = False,
                **options: object) -> Reader:
    """A reader for `path`, of format `fmt` or the one its content shows.

    `path` may be the directory `perf record --threads` writes.
    `options` are reader-specific settings (e.g. `buffer` for trace.dat); None values are
    ignored, others must be in the reader's `options`.
    """
    if path.is_dir() and fmt in (None, "perf.data"):
        name = detect_format(perf_dir_files(path)[0])  # perf record --threads output
        if name != "perf.data":
            raise InputError(path, f"directory whose `data` file is {name}, not perf.data")
    else:
        check_file(path)
        name = fmt or detect_format(path)
    if name not in READERS:
        known = ", ".join(sorted(READERS))
        raise InputError(path, f"unknown format {name!r} (known: {known})")
    module, cls = READERS[name].split(":")
    reader_cls = getattr(import_module(module), cls)
    options = {k: v for k, v in options.items() if v is not None}
    for key in options:
        if key not in reader_cls.options:
            raise InputError(path, f"--{key} does not apply to {name} input")
    return reader_cls(path, IngestStats(), strict=strict, **options)


__all__ = ["READERS", "IngestStats", "Reader", "open_reader"]
