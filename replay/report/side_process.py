"""The report's work that needs no sweep, in a process forked when `replay report` starts.

While the parent ingests the trace (one core), the child loads matplotlib and draws a
throw-away figure (about 0.6 s). Once the dataset exists it computes the trace's own
figures (`trace_figures`: DuckDB over events.parquet) and draws their plots while the
parent loads the stream (one core again) and sweeps; once sim/ is written it draws the
fragmentation plots from the series while the parent gathers the report's figures; at
the end it draws the rest from them. A process that may not fork (`workers.may_fork`: a
server's, a cluster client's) does each step itself when it is asked for.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.errors import ReplayError
from replay.report.options import ReportOptions
from replay.workers import forked_child, may_fork

if TYPE_CHECKING:
    from replay.report.trace_figures import TraceFigures

#: DuckDB's threads in the side process: the parent's stream load and sweep need the rest.
SIDE_THREADS = 1
#: The parent's requests: compute the trace figures of a dataset (answered); draw the
#: plots of its sweep's series (not answered: what fails is drawn again with the rest);
#: draw a report's plots (answered).
TRACE, SERIES, PLOTS = "trace", "series", "plots"


class SideError(ReplayError):
    """The side process failed or died."""


class Side:
    """The side work, done in this process when asked for (no fork): `collect` computes
    the trace figures itself, the plots are drawn here."""

    def begin_trace_figures(self, dataset: Path, options: ReportOptions) -> None:
        """Start the trace figures of `dataset` for `options` (here: nothing yet)."""

    def trace_figures(self) -> TraceFigures | None:
        """The trace figures begun with `begin_trace_figures`; None: `collect` computes them."""
        return None

    def begin_series_plots(self, dataset: Path, options: ReportOptions) -> None:
        """Start drawing the plots of `dataset`'s swept series (here: nothing yet)."""

    def plots(self, rep: dict[str, Any]) -> dict[str, str]:
        """The report's plots (`plots.render_all`) from its figures."""
        from replay.report.plots import render_all

        return render_all(rep)


class SideProcess(Side):
    """The parent's end of the pipe to the forked side process."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.begun = False

    def begin_trace_figures(self, dataset: Path, options: ReportOptions) -> None:
        self._send((TRACE, dataset, options))
        self.begun = True

    def trace_figures(self) -> TraceFigures | None:
        return self._receive() if self.begun else None

    def begin_series_plots(self, dataset: Path, options: ReportOptions) -> None:
        self._send((SERIES, dataset, options))

    def plots(self, rep: dict[str, Any]) -> dict[str, str]:
        self._send((PLOTS, rep))
        return self._receive()

    def _send(self, message: tuple) -> None:
        try:
            self.conn.send(message)
        except OSError as e:
            raise SideError(f"the report's side process died ({e})") from None

    def _receive(self) -> Any:
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError) as e:
            raise SideError(f"the report's side process died ({e or type(e).__name__})"
                            ) from None
        if status != "ok":
            raise SideError(value)
        return value


def _trace_step(dataset: Path, options: ReportOptions
                ) -> tuple[TraceFigures, dict[str, str]]:
    """The trace figures of `dataset` and the plots drawn from them alone."""
    from replay.report.collect import candidates
    from replay.report.plots import TRACE_PLOTS, render_all
    from replay.report.trace_figures import dataset_trace_figures

    figs = dataset_trace_figures(dataset, options, threads=SIDE_THREADS)
    # the trace plots read the demand above each N, not its rate (duration unknown here)
    part = {"demand": figs.demand,
            "candidates": candidates(options, figs.demand["orders"], [], None)}
    return figs, render_all(part, TRACE_PLOTS)


def _series_plots(dataset: Path, options: ReportOptions) -> dict[str, str]:
    """The plots drawn from the sweep's fragmentation series alone."""
    from replay.database import open_datasets
    from replay.report.plots import SERIES_PLOTS, render_all
    from replay.report.sweep import fragmentation

    with open_datasets([dataset], threads=SIDE_THREADS) as db:
        return render_all({"fragmentation": fragmentation(db, options)}, SERIES_PLOTS)


def _serve(conn: Connection, parents_end: Connection) -> None:
    """The child: load matplotlib, then take the parent's requests in turn until it
    closes the pipe, answering TRACE and PLOTS with ("ok", value) or ("error", one-line
    message); the SERIES plots are kept for the PLOTS answer."""
    from replay.report.plots import PLOTS as ALL_PLOTS
    from replay.report.plots import render_all, warm_up

    parents_end.close()  # else this copy keeps the pipe open: no end of file, ever
    warm_up()
    drawn: dict[str, str] = {}
    while True:
        try:
            tag, *args = conn.recv()
        except EOFError:  # the parent is done (or stopped before asking)
            return
        if tag == SERIES:
            try:
                drawn = {**drawn, **_series_plots(*args)}
            except Exception:  # noqa: BLE001 - drawn again, with the error, with the rest
                pass
            continue
        try:
            if tag == TRACE:
                value, drawn = _trace_step(*args)
            else:
                (rep,) = args
                value = {**drawn, **render_all(rep, [k for k in ALL_PLOTS if k not in drawn])}
            reply = ("ok", value)
        except ReplayError as e:  # already one line for the user
            reply = ("error", str(e))
        except Exception as e:  # noqa: BLE001 - the parent raises it as one line
            reply = ("error", f"{tag}: {type(e).__name__}: {e}")
        try:
            conn.send(reply)
        except OSError:  # the parent closed the pipe without reading: it is done
            return


@contextmanager
def side_process() -> Iterator[Side]:
    """The report's side work (see the module docstring): a child forked now when this
    process may fork, stopped when the `with` ends whether or not it was used; else this
    process's own `Side`."""
    if not may_fork():
        yield Side()
        return
    here, there = multiprocessing.get_context("fork").Pipe()
    with forked_child(_serve, there, here, name="replay-side"):
        there.close()
        try:
            yield SideProcess(here)
        finally:
            here.close()  # an unused child sees the end of the pipe and exits
