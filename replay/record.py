"""`replay record`: capture the kmem page events of the live kernel straight into a dataset.

No trace-cmd or perf needed: tracefs is driven directly (`replay.capture`), each CPU's
ring buffer is streamed to a spool file while the workload runs, and afterwards the
spools are decoded with the same ring-buffer and entry decoders as trace.dat files and
written as a dataset whose `snapshots/` hold /proc memory state at start and end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ingest.base import IngestStats
from ingest.ringbuffer_spool import spool_events
from replay.capture import Capture, CaptureResult
from replay.dataset import DatasetWriter
from ingest.errors import InputError
from replay.ingestion import stats_meta
from replay.progress import progress_bar, warn
from ingest.schema import EVENT_NAMES
from replay.tracefs import check_writable, find_tracefs, unmount_tracefs

#: per-CPU ring-buffer size (KiB) unless --buffer-kb says otherwise: the streaming readers
#: empty it continuously, the size only has to absorb bursts
DEFAULT_BUFFER_KB = 4096


@dataclass(frozen=True)
class RecordOptions:
    """What `replay record` captures and how; written into meta.json as `recording`."""

    #: dataset directory (default: record-<date>-<time>.replay in the current directory)
    output: Path | None = None
    #: seconds to record (None: until the command exits, or until Ctrl-C)
    duration: float | None = None
    #: workload to run while recording (empty: record the whole system as it is)
    command: tuple[str, ...] = ()
    #: per-CPU ring-buffer size in KiB (None: the kernel's default)
    buffer_kb: int | None = DEFAULT_BUFFER_KB
    #: canonical kmem page events to enable
    events: tuple[str, ...] = EVENT_NAMES
    #: also store a compressed /proc/kpageflags image at the start
    kpageflags: bool = False
    #: replace an existing dataset
    force: bool = False
    #: no progress display
    quiet: bool = False
    #: the tracefs to use (None: the mounted one, or mount it)
    tracefs: Path | None = None


def default_record_output() -> Path:
    """`record-YYYYmmdd-HHMMSS.replay` in the current directory."""
    return Path(time.strftime("record-%Y%m%d-%H%M%S.replay"))


def record(opts: RecordOptions) -> Path:
    """Capture per `opts` and write the dataset; return its path."""
    if opts.command and shutil.which(opts.command[0]) is None:
        raise InputError(opts.command[0], "command not found")
    out = Path(opts.output) if opts.output is not None else default_record_output()
    with DatasetWriter(out, force=opts.force) as writer:
        root, mounted = (Path(opts.tracefs), False) if opts.tracefs else find_tracefs()
        try:
            check_writable(root)
            with tempfile.TemporaryDirectory(prefix=".replay-spool-", dir=out.parent) as tmp:
                cap = Capture(root, opts.events, writer, Path(tmp), buffer_kb=opts.buffer_kb,
                              duration=opts.duration, command=opts.command,
                              kpageflags=opts.kpageflags, quiet=opts.quiet).run()
                decode_start = time.monotonic()
                stats = _write_events(writer, cap, opts.quiet)
                meta = _meta(root, cap, stats, opts)
                meta["recording"]["decode_seconds"] = round(time.monotonic() - decode_start, 3)
                writer.commit(meta)
        finally:
            if mounted:
                unmount_tracefs(root)
    _warn(out, cap, stats)
    return out


def _write_events(writer: DatasetWriter, cap: CaptureResult, quiet: bool) -> IngestStats:
    stats = IngestStats(format="tracefs")
    total = sum(p.stat().st_size for p in cap.spools.values())
    done = 0
    with progress_bar("decode", total, quiet=quiet) as bar:
        def progress(n: int) -> None:
            nonlocal done
            done += n
            bar.update(done)

        for batch in spool_events(cap.spools, cap.formats, cap.header, cap.comms, stats,
                                  progress):
            writer.add_events(batch)
    _add_kernel_losses(stats, cap)
    return stats


def _add_kernel_losses(stats: IngestStats, cap: CaptureResult) -> None:
    """Per CPU, events lost = the larger of what the sub-buffer flags and the `overrun`
    counter say (they count the same overwritten events; the flags can lack a count),
    plus `commit overrun` and `dropped events`, which no sub-buffer flag reports."""
    flagged = dict(stats.lost_events)
    for cpu, s in cap.stats.items():
        lost = max(flagged.get(cpu, 0), s.get("overrun", 0))
        lost += s.get("commit overrun", 0) + s.get("dropped events", 0)
        if lost:
            stats.lost_events[cpu] = lost
            if s.get("overrun", 0) >= flagged.get(cpu, 0):
                stats.lost_unknown.discard(cpu)
    stats.extra["lost_events_sources"] = {
        "subbuf_flags": {str(c): n for c, n in sorted(flagged.items())},
        "per_cpu_stats": {str(c): {k: s.get(k, 0) for k in
                                   ("overrun", "commit overrun", "dropped events")}
                          for c, s in sorted(cap.stats.items())},
    }


def _meta(root: Path, cap: CaptureResult, stats: IngestStats, opts: RecordOptions
          ) -> dict[str, Any]:
    stats.kernel_release = os.uname().release
    stats.page_size = os.sysconf("SC_PAGE_SIZE")
    stats.cpus = len(cap.spools)
    stats.clock = cap.clock
    recording = {k: v for k, v in asdict(opts).items()
                 if k not in ("output", "force", "quiet", "tracefs")}
    recording.update(
        tracefs=str(root),
        instance=cap.instance,
        tracepoints=[f"kmem:{e}" for e in cap.events],
        subbuf_size=cap.header.subbuf_size,
        wall_seconds=round(cap.wall_seconds, 6),
        interrupted=cap.interrupted,
        workload_pid=cap.workload_pid,
        workload_status=cap.workload_status,
        kpageflags_pfns=cap.kpageflags_pfns,
        per_cpu_stats={str(c): s for c, s in sorted(cap.stats.items())},
    )
    return {
        "source": {"path": str(root), "host": os.uname().nodename},
        **stats_meta(stats),
        "recording": recording,
    }


def _warn(out: Path, cap: CaptureResult, stats: IngestStats) -> None:
    for err in cap.restore_errors:
        warn(f"tracing state not restored: {err}")
    for err in cap.spool_errors:
        warn(f"ring-buffer reader failed: {err}")
    for path in cap.missing_snapshots:
        warn(f"{path}: not readable, snapshot skipped")
    if stats.malformed:
        warn(f"{out}: {stats.malformed} corrupt ring-buffer records skipped, "
             f"first: {stats.malformed_examples[0]}")
    lost = sum(stats.lost_events.values())
    if lost or stats.lost_unknown:
        cpus = sorted(set(stats.lost_events) | stats.lost_unknown)
        warn(f"{out}: {lost} events lost (CPUs {cpus}); use a larger --buffer-kb")
    if cap.workload_status:
        warn(f"the workload exited with status {cap.workload_status}")
    if cap.workload_pid is not None and cap.workload_status is None:
        warn(f"the workload (pid {cap.workload_pid}) is still running: recording stopped "
             "after --duration")
