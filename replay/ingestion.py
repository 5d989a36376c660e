"""Ingest: one trace file through its reader into a dataset directory."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ingest import open_reader
from ingest.base import IngestStats
from ingest.perf_dir import input_files
from replay.dataset import DatasetWriter, default_output
from ingest.errors import InputError, OutputError
from ingest.source import STDIN, spooled
from replay.progress import progress_bar, warn
from replay.workers import result_of


def sha256_of(files: list[Path]) -> str:
    """sha256 of an input's files concatenated in reading order (meta.json `source`)."""
    h = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            while chunk := f.read(8 << 20):
                h.update(chunk)
    return h.hexdigest()


class _Sha256(threading.Thread):
    """Hashes the input file (a perf.data directory: its files, concatenated in reading
    order) in the background while the reader parses it."""

    def __init__(self, files: list[Path]) -> None:
        super().__init__(daemon=True)
        self.files = files
        self.digest = ""

    def run(self) -> None:
        self.digest = sha256_of(self.files)


def stats_meta(stats: IngestStats) -> dict[str, Any]:
    """The meta.json fields a reader's statistics give."""
    lost = {str(cpu): n for cpu, n in sorted(stats.lost_events.items())}
    return {
        "format": stats.format,
        "format_version": stats.format_version,
        "kernel_release": stats.kernel_release,
        "page_size": stats.page_size,
        "cpus": stats.cpus,
        "clock": stats.clock,
        "lost_events": {
            "total": sum(stats.lost_events.values()),
            "per_cpu": lost,
            "unknown_count_cpus": sorted(stats.lost_unknown),
        },
        "skipped": {"total": sum(stats.skipped.values()), "by_event": dict(stats.skipped)},
        "malformed": {"total": stats.malformed, "examples": stats.malformed_examples},
        "truncated": stats.truncated,
        **stats.extra,
    }


def ingest(
    trace: Path,
    out: Path | None = None,
    fmt: str | None = None,
    force: bool = False,
    strict: bool = False,
    quiet: bool = False,
    buffer: str | None = None,
    kallsyms: Path | None = None,
) -> Path:
    """Read `trace` and write its dataset directory; return the directory's path.

    `buffer` names the ftrace instance to read from a trace.dat (default: the top one);
    `kallsyms` the recording machine's /proc/kallsyms for perf.data callchain symbols.
    """
    trace = Path(trace)
    if out is None and trace == STDIN:
        raise OutputError("reading standard input needs -o DATASET")
    out = Path(out) if out is not None else default_output(trace)
    with spooled(trace) as path:
        try:
            stats = _ingest(trace, path, out, fmt=fmt, force=force, strict=strict,
                            quiet=quiet, buffer=buffer, kallsyms=kallsyms)
        except InputError as e:
            if path == trace or e.path != str(path):
                raise
            # name the input as given, not its spooled copy
            raise InputError(trace, e.why, e.where) from None
    _warn_losses(trace, stats)
    return out


def _ingest(trace: Path, path: Path, out: Path, fmt: str | None, force: bool, strict: bool,
            quiet: bool, buffer: str | None, kallsyms: Path | None) -> IngestStats:
    """`ingest` of the input `trace`, readable (and seekable) at `path`."""
    reader = open_reader(path, fmt, strict=strict, buffer=buffer, kallsyms=kallsyms)
    files = input_files(path)
    inputs = [trace, *(files if path == trace else [])]  # never replaced by `out`
    with DatasetWriter(out, force=force, inputs=inputs) as writer:
        hasher = _Sha256(files)
        hasher.start()
        with progress_bar(f"ingest {trace.name}", reader.size, quiet=quiet) as bar:
            # Each batch is written in a thread while the reader builds the next one:
            # pyarrow's Parquet writer releases the GIL. One write at a time, at most two
            # batches in memory.
            with ThreadPoolExecutor(1) as pool:
                pending = None
                for batch in reader.events():
                    if pending is not None:
                        result_of(pending)
                    pending = pool.submit(writer.add_events, batch)
                    bar.update(reader.position)
                    del batch  # the writer holds it until written
                if pending is not None:
                    result_of(pending)
            for batch in reader.stacks():
                writer.add_stacks(batch)
        stats = reader.stats
        if writer.rows == 0:
            skipped = sum(stats.skipped.values())
            raise InputError(
                path, f"no kmem page events found ({skipped} records of other events)"
            )
        if stats.malformed and strict:
            raise InputError(path, f"malformed page event: {stats.malformed_examples[0]}")
        hasher.join()
        meta = {
            "source": {
                "path": "<stdin>" if trace == STDIN else str(trace.resolve()),
                "sha256": hasher.digest,
                "size": sum(f.stat().st_size for f in files),
            },
            **stats_meta(stats),
        }
        writer.commit(meta)
    return stats


def _warn_losses(trace: Path, stats: IngestStats) -> None:
    lost = sum(stats.lost_events.values())
    if lost or stats.lost_unknown:
        cpus = sorted(set(stats.lost_events) | stats.lost_unknown)
        warn(f"{trace}: {lost} events lost (CPUs {cpus}); pairs around them may not match")
    if stats.malformed:
        warn(f"{trace}: {stats.malformed} malformed page-event records skipped, "
             f"first: {stats.malformed_examples[0]}")
    if stats.truncated:
        warn(f"{trace}: input is truncated; the dataset holds the complete events before it")
