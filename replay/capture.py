"""One live capture: configure tracing, stream the ring buffers, run the workload, restore.

`Capture.run()` sets up a private tracing instance with the kmem page events, starts a
spooling thread per CPU, takes the start snapshots, runs the workload (or waits for the
duration or Ctrl-C), stops tracing, takes the end snapshots, drains the buffers and puts
every tracefs file it changed back as it was: on success, on error and on Ctrl-C
(SIGINT, SIGTERM and SIGHUP stop the capture; a second one aborts it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ingest.event_format import (
    EventFormat,
    FormatError,
    HeaderPage,
    parse_format,
    parse_header_page,
)
from replay.dataset import DatasetWriter
from ingest.errors import InputError, TracingError
from replay.progress import progress_bar
from ingest.schema import EVENT_ALIASES
from replay.snapshots import take_kpageflags, take_proc_snapshots
from replay.spool import CpuSpooler, start_spoolers
from replay.tracefs import (
    INSTANCE_PREFIX,
    TracingState,
    create_instance,
    current_clock,
    online_cpus,
    per_cpu_stats,
    remove_instance,
    remove_stale_instances,
    saved_cmdlines,
)

#: signals that stop a capture (the dataset is still written); a second one aborts
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: how long a workload gets to exit after the capture was interrupted, per escalation step
_WORKLOAD_GRACE = 2.0


def resolve_events(dir: Path, names: tuple[str, ...]) -> list[str]:
    """The tracefs event names (`events/kmem/<name>`) for canonical page-event names.

    Kernels before 3.3 call two of them `mm_page_free_direct` / `mm_pagevec_free`.
    """
    kmem = dir / "events" / "kmem"
    if not kmem.is_dir():
        raise TracingError(
            f"events missing: {kmem} does not exist; the kernel has no kmem tracepoints "
            "(it needs CONFIG_TRACEPOINTS and CONFIG_EVENT_TRACING)"
        )
    found, missing = [], []
    for name in names:
        olds = [old for old, new in EVENT_ALIASES.items() if new == name]
        have = [n for n in (name, *olds) if (kmem / n / "format").is_file()]
        if have:
            found.append(have[0])
        else:
            missing.append(name)
    if missing:
        raise TracingError(
            f"events missing: {', '.join('kmem:' + m for m in missing)} not in {kmem}; "
            "record the others with --events"
        )
    return found


def task_comms(pids: list[int] | None = None, proc: Path = Path("/proc")) -> dict[int, str]:
    """Thread id -> comm of the given processes' threads (all processes when None)."""
    comms = {}
    dirs = [proc / str(p) for p in pids] if pids is not None else proc.glob("[0-9]*")
    for pdir in dirs:
        try:
            for task in (pdir / "task").iterdir():
                comms[int(task.name)] = (task / "comm").read_text().rstrip("\n")
        except (OSError, ValueError):
            continue
    return comms


def _children(pid: int, proc: Path = Path("/proc")) -> list[int]:
    kids = []
    try:
        for task in (proc / str(pid) / "task").iterdir():
            kids += [int(c) for c in (task / "children").read_text().split()]
    except (OSError, ValueError):
        pass
    return kids


@dataclass
class CaptureResult:
    """What a finished capture leaves for decoding and for meta.json."""

    spools: dict[int, Path] = field(default_factory=dict)
    formats: list[EventFormat] = field(default_factory=list)
    header: HeaderPage | None = None
    events: list[str] = field(default_factory=list)
    clock: str = ""
    instance: str | None = None
    stats: dict[int, dict[str, int]] = field(default_factory=dict)
    comms: dict[int, str] = field(default_factory=dict)
    wall_seconds: float = 0.0
    interrupted: bool = False
    workload_pid: int | None = None
    workload_status: int | None = None
    kpageflags_pfns: int | None = None
    missing_snapshots: list[str] = field(default_factory=list)
    spool_errors: list[str] = field(default_factory=list)
    restore_errors: list[str] = field(default_factory=list)


class Capture:
    """A capture from the tracefs at `root` into spool files and the dataset's snapshots."""

    def __init__(self, root: Path, events: tuple[str, ...], writer: DatasetWriter,
                 spool_dir: Path, *, buffer_kb: int | None, duration: float | None,
                 command: tuple[str, ...], kpageflags: bool, quiet: bool) -> None:
        self.root = root
        self.requested = events
        self.writer = writer
        self.spool_dir = spool_dir
        self.buffer_kb = buffer_kb
        self.duration = duration
        self.command = command
        self.kpageflags = kpageflags
        self.quiet = quiet
        self.result = CaptureResult()
        self._stop_requested = threading.Event()
        self._stop_spooling = threading.Event()
        self._spoolers: list[CpuSpooler] = []
        self._old_handlers: dict[int, object] = {}

    # -- the whole capture ------------------------------------------------------------

    def run(self) -> CaptureResult:
        """Capture; tracing is restored before this returns or raises."""
        res = self.result
        top = TracingState(self.root)
        inst: Path | None = None
        state = top
        try:
            remove_stale_instances(self.root)
            # Instances copy the top-level record-cmd flag when created: set it first.
            rc = self.root / "options" / "record-cmd"
            if rc.is_file() and top.read("options/record-cmd").strip() == "0":
                top.write("options/record-cmd", "1")
            inst = create_instance(self.root, f"{INSTANCE_PREFIX}{os.getpid()}")
            state = TracingState(inst) if inst is not None else top
            res.instance = inst.name if inst is not None else None
            self._configure(state, top_level=inst is None)
            self._record(state)
        finally:
            self._stop_spooling.set()
            self._restore_signals()
            # Events off first: then the spoolers drain an idle buffer and finish.
            errors = state.restore()
            self._join_spoolers()
            if inst is not None:
                err = remove_instance(inst)
                errors += [err] if err else []
                errors += top.restore()
            res.restore_errors = errors
        return res

    def _configure(self, state: TracingState, top_level: bool) -> None:
        res = self.result
        dir = state.dir
        res.events = resolve_events(dir, self.requested)
        for rel in [f"events/kmem/{name}/format" for name in res.events] + ["events/header_page"]:
            try:
                if rel.endswith("header_page"):
                    res.header = parse_header_page(state.read(rel))
                else:
                    res.formats.append(parse_format(state.read(rel), "kmem"))
            except (OSError, FormatError) as e:
                raise TracingError(f"{dir / rel}: {getattr(e, 'strerror', None) or e}") from None
        res.clock = current_clock(state.read("trace_clock"))
        state.write("tracing_on", "0")
        if self.buffer_kb is not None:
            state.write("buffer_size_kb", str(self.buffer_kb))
        for name in res.events:
            state.write(f"events/kmem/{name}/enable", "1")
        if top_level:
            # No private instance: empty the shared buffer of older events, as trace-cmd does.
            (dir / "trace").open("w").close()

    def _record(self, state: TracingState) -> None:
        res = self.result
        cpus = online_cpus(state.dir)
        try:
            self._spoolers = start_spoolers(state.dir, cpus, self.spool_dir, res.header,
                                            self._stop_spooling)
        except OSError as e:
            raise TracingError(f"cannot read the ring buffer: {e.strerror}") from None
        res.spools = {s.cpu: s.spool for s in self._spoolers}
        self._install_signals()
        comms = task_comms()
        start = time.monotonic()
        state.write("tracing_on", "1")
        res.missing_snapshots += take_proc_snapshots(self.writer, "start")
        if self.kpageflags:
            try:
                res.kpageflags_pfns = take_kpageflags(self.writer)
            except OSError as e:
                raise TracingError(f"/proc/kpageflags: cannot be read: {e.strerror} "
                                   "(it needs root and CONFIG_PROC_PAGE_MONITOR)") from None
        workload = self._wait(start)
        state.write("tracing_on", "0")
        res.wall_seconds = time.monotonic() - start
        res.missing_snapshots += take_proc_snapshots(self.writer, "end")
        self._stop_spooling.set()
        self._join_spoolers()
        res.spool_errors = [s.error for s in self._spoolers if s.error]
        res.stats = {cpu: per_cpu_stats(state.dir, cpu) for cpu in cpus}
        comms.update(task_comms())
        comms.update(workload)
        comms.update(saved_cmdlines(self.root))
        res.comms = comms

    def _wait(self, start: float) -> dict[int, str]:
        """Run the workload or wait for the duration or a stop signal; the workload's
        thread id -> comm map, gathered while it runs."""
        res = self.result
        comms: dict[int, str] = {}
        proc = None
        if self.command:
            try:
                proc = subprocess.Popen(self.command)
            except OSError as e:
                raise InputError(self.command[0], f"cannot run: {e.strerror}") from None
            res.workload_pid = proc.pid
        what = " ".join(self.command) if self.command else "recording"
        with progress_bar(what, None, quiet=self.quiet) as bar:
            while not self._stop_requested.wait(0.1):
                if proc is not None:
                    if proc.poll() is not None:
                        break
                    comms.update(self._workload_comms(proc.pid))
                if self.duration is not None and time.monotonic() - start >= self.duration:
                    break
                bar.update(sum(s.bytes for s in self._spoolers))
        if proc is not None:
            res.workload_status = self._end_workload(proc)
        return comms

    def _workload_comms(self, pid: int) -> dict[int, str]:
        tree, todo = [], [pid]
        while todo:
            p = todo.pop()
            tree.append(p)
            todo += _children(p)
        return task_comms(tree)

    def _end_workload(self, proc: subprocess.Popen) -> int | None:
        """The workload's exit status. After an interrupt it is asked to stop, then made
        to; when the duration ran out it is left running (status None)."""
        if not self.result.interrupted:
            return proc.poll()
        for sig in (None, signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                proc.send_signal(sig)
            try:
                return proc.wait(_WORKLOAD_GRACE)
            except subprocess.TimeoutExpired:
                continue
        return proc.wait()

    # -- signals and threads ----------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:  # noqa: ARG002
        if self.result.interrupted:
            raise KeyboardInterrupt
        self.result.interrupted = True
        self._stop_requested.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in STOP_SIGNALS:
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signals(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def _join_spoolers(self) -> None:
        for s in self._spoolers:
            if s.is_alive():
                s.join()
