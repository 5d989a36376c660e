"""One job's work in its own process: ingest the upload, write the report.

Run as `python -m replay.serve.worker` by `replay.serve.jobs`, with a pickled `Spec` on
stdin. It speaks JSON lines on stdout: `{"phase": ..., "progress": ...}` as the library's
progress bars advance, then `{"done": true}` or `{"error": ONE_LINE}` (the message the
command line would print). A process of its own keeps the server answering while the
engine computes, lets the engine fork its own workers from a single-threaded process,
and dies with the server (PR_SET_PDEATHSIG), its forked children with it, so a killed
server leaves no job running.
"""

from __future__ import annotations

import ctypes
import json
import os
import pickle
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ingest.errors import ReplayError
from replay.ingestion import ingest
from replay.progress import progress_listener
from replay.report.make import make_report
from replay.report.options import ReportOptions

#: Each phase's share of a job's progress, as (start, end): the engine's sweep dominates.
PHASES = {"ingest": (0.0, 0.3), "simulate": (0.3, 0.9), "report": (0.9, 1.0)}
#: prctl(2) option: the signal this process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Spec:
    """What a job's worker does: `trace` into the dataset directory `out`, reported with
    `report` options; `parent` is the server's pid."""

    trace: Path
    out: Path
    report: ReportOptions
    parent: int
    #: Dask scheduler the sweep runs on (None: this process's pool)
    scheduler: str | None = None


class Progress:
    """The library's progress bars as a job's phase and overall share, sent as lines
    whenever they move by at least a step."""

    STEP = 0.005

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.phase = ""
        self.sent = -1.0

    def send(self, **message: object) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def __call__(self, description: str, completed: int, total: int | None) -> None:
        phase = description.split()[0] if description else ""
        if phase not in PHASES:
            return
        start, end = PHASES[phase]
        share = min(completed / total, 1.0) if total else 0.0
        progress = start + (end - start) * share
        if phase == "simulate" and share >= 1.0:  # the sweep is done: the report is next
            phase, progress = "report", PHASES["report"][0]
        if phase != self.phase or progress - self.sent >= self.STEP:
            self.phase, self.sent = phase, progress
            self.send(phase=phase, progress=round(progress, 4))


def _kill_with_parent() -> None:
    """Have the kernel kill this process when its parent (the thread that forked it)
    ends."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _die_with_parent(parent: int) -> None:
    """Die with the server, and have every process forked from here (the engine's
    sweep workers) die with this one: an orphan would wait for work forever."""
    _kill_with_parent()
    if os.getppid() != parent:  # the server died before prctl took effect
        os._exit(1)
    os.register_at_fork(after_in_child=_kill_with_parent)


def run(spec: Spec, progress: Progress) -> None:
    """Ingest and report, as `replay report TRACE` does, into `spec.out`."""
    with progress_listener(progress):
        ingest(spec.trace, spec.out, quiet=True)
        if spec.scheduler is not None:
            from replay.fleet.make import simulate_on_cluster
            from replay.report.sweep import sim_options

            simulate_on_cluster(spec.out, sim_options(spec.report), spec.scheduler,
                                quiet=True)
        make_report(spec.out, None, spec.report, quiet=True)


def main() -> int:
    spec: Spec = pickle.load(sys.stdin.buffer)
    _die_with_parent(spec.parent)
    # The protocol gets stdout to itself; anything else printed goes to stderr (the log).
    progress = Progress(os.fdopen(os.dup(1), "w"))
    os.dup2(2, 1)
    try:
        run(spec, progress)
    except ReplayError as e:
        progress.send(error=str(e))
        return 1
    except Exception as e:  # noqa: BLE001 - a bug: one line to the user, the trace to the log
        traceback.print_exc()
        progress.send(error=" ".join(f"internal error: {type(e).__name__}: {e}".split()))
        return 2
    progress.send(done=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)  # as the command line does: no teardown once everything is written
