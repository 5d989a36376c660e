"""Progress bars on a terminal, nothing when piped or quiet."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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


#: Told (description, completed, total) on every bar's start and update, shown or not.
Listener = Callable[[str, int, "int | None"], None]
_listener: ContextVar[Listener | None] = ContextVar("progress_listener", default=None)


@contextmanager
def progress_listener(listener: Listener) -> Iterator[None]:
    """Send every bar's progress to `listener` within this block (this thread's context):
    how a service follows a job that no terminal shows."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None,
                 description: str = "", total: int | None = None) -> None:
        self._progress = progress
        self._task = task
        self._description = description
        self._total = total
        self._listener = _listener.get()
        if self._listener is not None:
            self._listener(description, 0, total)

    def update(self, completed: int, total: int | None = None) -> None:
        """Set how much is done (and the total, when it changed)."""
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, total=total)
        if self._listener is not None:
            self._total = total if total is not None else self._total
            self._listener(self._description, completed, self._total)


@contextmanager
def progress_bar(description: str, total: int | None, quiet: bool = False,
                 unit_bytes: bool = True) -> Iterator[_Bar]:
    """A bar shown on a terminal (stderr) unless `quiet`; a no-op otherwise (but for a
    `progress_listener`)."""
    if quiet or not sys.stderr.isatty():
        yield _Bar(None, None, description, total)
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
        yield _Bar(p, p.add_task(description, total=total), description, total)


def warn(message: str) -> None:
    """Print a one-line warning on stderr."""
    console().print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)
