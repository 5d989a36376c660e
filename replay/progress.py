"""Progress: a bar on a terminal, a line per phase when stderr is piped, nothing quiet."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


@functools.cache
def console() -> Console:
    """Console for warnings, errors and bars: stderr, so stdout stays clean for data.
    Made on first use: importing rich costs ~45 ms that a run printing nothing through
    it need not pay."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def note(message: str) -> None:
    """Print a plain one-line message on stderr (no markup: a path may hold brackets)."""
    print(message, file=sys.stderr, flush=True)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress = progress
        self._task = task

    def update(self, completed: int, total: int | None = None) -> None:
        """Set how much is done (and the total, when it changed)."""
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, total=total)


@contextmanager
def progress_bar(description: str, total: int | None, quiet: bool = False,
                 unit_bytes: bool = True) -> Iterator[_Bar]:
    """A bar shown on a terminal (stderr) unless `quiet`; when stderr is not a terminal,
    one line naming the phase as it starts (a log or CI shows where a long run is)."""
    if quiet or not sys.stderr.isatty():
        if not quiet:
            note(f"replay: {description}...")
        yield _Bar(None, None)
        return
    # imported only for a bar: rich.progress costs ~25 ms of start-up, and piped runs
    # never draw one
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    if unit_bytes:
        columns.append(DownloadColumn())
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=console(), transient=True) as p:
        yield _Bar(p, p.add_task(description, total=total))


def warn(message: str) -> None:
    """Print a one-line warning on stderr."""
    console().print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)
