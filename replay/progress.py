"""Progress: a bar on a terminal, a line per phase when stderr is piped, nothing quiet;
and every bar's progress to a listener (a service following a job)."""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


#: how long a phase runs, stderr piped, before its line is printed
PIPED_LINE_AFTER_S = 1.0


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
    """A bar shown on a terminal (stderr) unless `quiet`; when stderr is not a terminal,
    one line naming the phase once it has run for `PIPED_LINE_AFTER_S` (a log or CI shows
    where a long run is; a quick one, or bad input refused at once, prints nothing). A
    `progress_listener` hears every bar, shown or not."""
    if quiet or not sys.stderr.isatty():
        timer = threading.Timer(PIPED_LINE_AFTER_S, note, (f"replay: {description}...",))
        timer.daemon = True
        if not quiet:
            timer.start()
        try:
            yield _Bar(None, None, description, total)
        finally:
            timer.cancel()
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
    """Print a one-line warning on stderr (the message is text, never markup)."""
    _labelled("[yellow]warning:[/yellow]", message)


def error(message: str) -> None:
    """Print a one-line error on stderr (the message is text, never markup: it may echo
    SQL or a path with brackets)."""
    _labelled("[red]error:[/red]", message)


def _labelled(label: str, message: str) -> None:
    from rich.markup import escape

    console().print(f"{label} {escape(message)}", soft_wrap=True)
