"""The report's plots drawn in a process forked when `replay report` starts.

The child loads matplotlib and sets up a first figure (about 0.6 s) while the parent
ingests the trace and loads the stream, work that keeps one core busy and leaves the
other idle; when the figures are known the parent sends them and gets the SVG text back.
A process that may not fork (`workers.may_fork`: a server's, a cluster client's) draws
the plots itself.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

from ingest.errors import ReplayError
from replay.workers import forked_child, may_fork

Renderer = Callable[[dict[str, Any]], dict[str, str]]


class PlotError(ReplayError):
    """The plot process failed or died."""


def _serve(conn: Connection) -> None:
    """The child: load matplotlib, draw one throw-away figure, then render the report
    it is sent and send back ("ok", svgs) or ("error", message)."""
    from replay.report.plots import render_all, warm_up

    warm_up()
    try:
        rep = conn.recv()
    except EOFError:  # the parent finished without plots (an error before them)
        return
    try:
        conn.send(("ok", render_all(rep)))
    except Exception as e:  # noqa: BLE001 - the parent raises it as one line
        conn.send(("error", f"{type(e).__name__}: {e}"))


class PlotProcess:
    """The forked child's end of the pipe: `render` sends the report's figures and
    returns its plots."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def render(self, rep: dict[str, Any]) -> dict[str, str]:
        try:
            self.conn.send(rep)
            status, value = self.conn.recv()
        except (EOFError, OSError) as e:
            raise PlotError(f"the plot process died ({e or type(e).__name__})") from None
        if status != "ok":
            raise PlotError(f"plots: {value}")
        return value


def _in_process(rep: dict[str, Any]) -> dict[str, str]:
    from replay.report.plots import render_all

    return render_all(rep)


@contextmanager
def plot_renderer() -> Iterator[Renderer]:
    """A function from the report's figures to its plots (`plots.render_all`), drawn in
    a forked child started now when this process may fork; the child is stopped when
    the `with` ends, whether or not it was used."""
    if not may_fork():
        yield _in_process
        return
    here, there = multiprocessing.get_context("fork").Pipe()
    with forked_child(_serve, there, name="replay-plots"):
        there.close()
        try:
            yield PlotProcess(here).render
        finally:
            here.close()  # an unused child sees the end of the pipe and exits
