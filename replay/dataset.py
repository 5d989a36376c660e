"""The dataset directory: `events.parquet`, `stacks.parquet`, `meta.json`, `snapshots/`.

`DatasetWriter` streams reader batches into Parquet under a temporary name and renames
the directory into place only when everything was written, so a failed ingest leaves
nothing behind and an existing dataset is replaced only with `force`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from replay import __version__
from ingest.errors import InputError, OutputError
from ingest.schema import EVENTS, SCHEMA_VERSION, STACKS

EVENTS_FILE = "events.parquet"
STACKS_FILE = "stacks.parquet"
META_FILE = "meta.json"
SNAPSHOTS_DIR = "snapshots"
#: /proc files copied into `snapshots/` at the start and at the end of a recording
PROC_FILES = ("buddyinfo", "pagetypeinfo", "zoneinfo", "meminfo")
#: the compressed /proc/kpageflags image (one little-endian u64 of KPF_* bits per pfn)
KPAGEFLAGS = "start-kpageflags.zst"

_ROW_GROUP = 1 << 20


def _valid_values(arr: pa.Array) -> np.ndarray:
    """The non-null values of an integer array, as numpy.

    Read straight from the Arrow buffers: pyarrow.compute costs ~0.2 s to import and
    `Array.to_numpy` imports pandas, on every `replay ingest`.
    """
    validity, data = arr.buffers()[:2]
    end = arr.offset + len(arr)
    values = np.frombuffer(data, arr.type.to_pandas_dtype(), end)[arr.offset:]
    if arr.null_count == 0:
        return values
    valid = np.unpackbits(np.frombuffer(validity, np.uint8), count=end, bitorder="little")
    return values[valid[arr.offset:].astype(bool)]


def default_output(trace: Path) -> Path:
    """The dataset directory for `trace` when -o is not given: next to it, named after it."""
    return trace.with_name(trace.name + ".replay")


def is_dataset(path: Path) -> bool:
    """Whether `path` is a dataset directory."""
    return (path / META_FILE).is_file() and (path / EVENTS_FILE).is_file()


def read_meta(path: Path) -> dict[str, Any]:
    """The meta.json of the dataset at `path`."""
    if not path.exists():
        raise InputError(path, "no such dataset")
    if not is_dataset(path):
        raise InputError(path, f"not a replay dataset (no {META_FILE} and {EVENTS_FILE})")
    try:
        return json.loads((path / META_FILE).read_text())
    except (OSError, ValueError) as e:
        raise InputError(path / META_FILE, f"unreadable: {e}") from None


class DatasetWriter:
    """Writes one dataset atomically; use as a context manager, then `commit(meta)`."""

    def __init__(self, out: Path, force: bool = False) -> None:
        self.out = out
        if out.exists() and not force:
            raise OutputError(f"{out}: already exists (use --force to replace it)")
        if not out.parent.is_dir():
            raise OutputError(f"{out.parent}: no such directory")
        self.tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        try:
            self.tmp.mkdir()
        except OSError as e:
            raise OutputError(f"{out.parent}: cannot write: {e.strerror}") from None
        self._events: pq.ParquetWriter | None = None
        self._stacks: pq.ParquetWriter | None = None
        self.rows = 0
        self.stack_frames = 0
        self.counts: Counter = Counter()
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.snapshots: list[str] = []

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if exc_type is not None:
            self.abort()

    def add_events(self, batch: pa.RecordBatch) -> None:
        """Append reader events (time-ordered), numbering them with `seq`."""
        n = batch.num_rows
        if n == 0:
            return
        # from a numpy buffer: pa.array(range|ndarray) costs time and imports pandas
        seq = pa.Array.from_buffers(
            pa.int64(), n, [None, pa.py_buffer(np.arange(self.rows, self.rows + n))]
        )
        table = pa.Table.from_batches([batch]).add_column(0, EVENTS.field("seq"), seq)
        if table.schema != EVENTS:
            table = table.cast(EVENTS)
        if self._events is None:
            # Dictionary pages only for the low-cardinality strings and delta encoding for
            # the monotonic columns: 40% less CPU than the defaults, and smaller files.
            self._events = pq.ParquetWriter(
                self.tmp / EVENTS_FILE,
                EVENTS,
                compression="zstd",
                use_dictionary=[f.name for f in EVENTS if pa.types.is_dictionary(f.type)],
                column_encoding={"seq": "DELTA_BINARY_PACKED", "ts_ns": "DELTA_BINARY_PACKED"},
                write_statistics=["seq", "ts_ns", "cpu", "pid", "pfn", "order"],
            )
        self._events.write_table(table, row_group_size=_ROW_GROUP)
        self.rows += n
        event = batch.column("event")  # dictionary-encoded: count codes, not strings
        names = event.dictionary.to_pylist()
        codes = np.bincount(_valid_values(event.indices), minlength=len(names))
        for code in np.flatnonzero(codes):
            self.counts[names[code]] += int(codes[code])
        ts = _valid_values(batch.column("ts_ns"))
        if len(ts):
            lo, hi = int(ts.min()), int(ts.max())
            self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
            self.last_ts = hi if self.last_ts is None else max(self.last_ts, hi)

    def add_stacks(self, batch: pa.RecordBatch) -> None:
        """Append stack frames."""
        if batch.num_rows == 0:
            return
        if self._stacks is None:
            # as for events: dictionaries for the strings only, deltas for the sorted ids
            self._stacks = pq.ParquetWriter(
                self.tmp / STACKS_FILE,
                STACKS,
                compression="zstd",
                use_dictionary=["context", "symbol", "dso"],
                column_encoding={"stack_id": "DELTA_BINARY_PACKED"},
                write_statistics=["stack_id"],
            )
        table = pa.Table.from_batches([batch])
        if table.schema != STACKS:  # Table.cast imports pyarrow.compute, even for a no-op
            table = table.cast(STACKS)
        self._stacks.write_table(table)
        self.stack_frames += batch.num_rows

    def add_snapshot(self, name: str, data: bytes) -> None:
        """Store a /proc snapshot (e.g. `start-zoneinfo`) in `snapshots/`."""
        with self.open_snapshot(name) as f:
            f.write(data)

    def open_snapshot(self, name: str) -> BinaryIO:
        """A file in `snapshots/` to stream a large snapshot into (a kpageflags image)."""
        d = self.tmp / SNAPSHOTS_DIR
        d.mkdir(exist_ok=True)
        self.snapshots.append(name)
        return open(d / name, "wb")

    def commit(self, meta: dict[str, Any]) -> Path:
        """Write meta.json (completed with what the writer counted) and move into place."""
        for w in (self._events, self._stacks):
            if w is not None:
                w.close()
        if self._events is None:
            pq.write_table(EVENTS.empty_table(), self.tmp / EVENTS_FILE)
        meta = {
            "schema_version": SCHEMA_VERSION,
            "tool": f"replay {__version__}",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **meta,
            "events": self.rows,
            "event_counts": dict(sorted(self.counts.items())),
            "time_span": {
                "first_ts_ns": self.first_ts,
                "last_ts_ns": self.last_ts,
                "duration_ns": None
                if self.first_ts is None
                else self.last_ts - self.first_ts,
            },
            "stack_frames": self.stack_frames,
            "snapshots": sorted(self.snapshots),
        }
        (self.tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            self.out.rename(old)
        self.tmp.rename(self.out)
        if old is not None:
            shutil.rmtree(old)
        return self.out

    def abort(self) -> None:
        """Remove everything written so far."""
        for w in (self._events, self._stacks):
            if w is not None:
                try:
                    w.close()
                except Exception:  # noqa: BLE001 - already failing; cleanup only
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)
