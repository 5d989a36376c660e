"""Progress of a fleet: tasks done / total per phase, for every trace at once.

On a terminal: one rich bar per phase (totals grow as earlier phases reveal work). When
piped: one line per phase as it completes. Nothing when quiet.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from replay.progress import console, note

#: the phases of a fleet run, in order
PHASES = ("ingest", "plan", "replay", "write")


class FleetProgress:
    """Counts per phase; a phase is complete once every earlier phase is and all of its
    tasks are done."""

    def __init__(self, phases: tuple[str, ...], progress: Any | None, quiet: bool) -> None:
        self.phases = phases
        self.total = dict.fromkeys(phases, 0)
        self.done = dict.fromkeys(phases, 0)
        self.failed = dict.fromkeys(phases, 0)
        self.closed: set[str] = set()
        self.t0 = time.perf_counter()
        self._progress = progress
        self._quiet = quiet
        self._tasks = ({p: progress.add_task(p, total=None) for p in phases}
                       if progress is not None else {})

    def add(self, phase: str, n: int = 1) -> None:
        """`n` more tasks in `phase`."""
        self.total[phase] += n
        self._show(phase)

    def finish(self, phase: str, failed: bool = False) -> None:
        """One task of `phase` is done (or failed for good)."""
        self.done[phase] += 1
        self.failed[phase] += failed
        self._show(phase)
        self._close_phases()

    def _show(self, phase: str) -> None:
        if self._progress is not None:
            self._progress.update(self._tasks[phase], completed=self.done[phase],
                                  total=self.total[phase])

    def _close_phases(self) -> None:
        for phase in self.phases:
            if phase in self.closed:
                continue
            if self.done[phase] < self.total[phase]:
                return
            self.closed.add(phase)
            if self.total[phase] and not self._quiet and self._progress is None:
                bad = f", {self.failed[phase]} failed" if self.failed[phase] else ""
                note(f"{phase}: {self.done[phase]}/{self.total[phase]} tasks done{bad} "
                     f"({time.perf_counter() - self.t0:.1f} s)")


@contextmanager
def fleet_progress(quiet: bool, phases: tuple[str, ...] = PHASES) -> Iterator[FleetProgress]:
    """Bars on a terminal, lines when piped, nothing when quiet."""
    if quiet or not sys.stderr.isatty():
        yield FleetProgress(phases, None, quiet)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description:<7}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("tasks"), console=console(), transient=True) as p:
        yield FleetProgress(phases, p, quiet)
