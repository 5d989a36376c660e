"""The fleet's commands: `replay report` of several inputs (or of one on a cluster),
`replay ingest` of several traces, `replay simulate` on a cluster. Each sequences the
steps (`run`) and hands failures back per trace; only the CLI prints them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ingest.errors import OutputError, ReplayError
from replay.dataset import read_meta
from replay.engine.options import SimOptions
from replay.engine.simulate import SweepSummary
from replay.fleet.cluster import connect
from replay.fleet.run import Steps, TraceRun, run_cluster, run_local, trace_runs
from replay.fleet.tasks import dataset_task, ingest_task
from replay.atomic import write_files
from replay.report.make import make_report, report_paths
from replay.report.options import ReportOptions
from replay.report.sweep import sim_options, sweep_is_current

#: the fleet report's default file (report.md and report.json beside it)
FLEET_HTML = "fleet-report.html"


class TraceFailed(ReplayError):
    """One input of a command failed; the message names it."""


def execute(runs: list[TraceRun], steps: Steps, scheduler: str | None,
            quiet: bool = False) -> list[TraceRun]:
    """The runs' steps on the cluster at `scheduler`, else here."""
    if scheduler is None:
        return run_local(runs, steps, quiet)
    import time

    t0 = time.perf_counter()
    with connect(scheduler) as client:
        run_cluster(client, runs, steps, quiet)
    for run in runs:
        if run.summary is not None:
            run.summary = replace(run.summary, elapsed=time.perf_counter() - t0)
    return runs


def _only(run: TraceRun) -> TraceRun:
    if run.error is not None:
        raise TraceFailed(f"{run.label}: {run.error}")
    return run


def report_steps(options: ReportOptions, force: bool) -> Steps:
    """`replay report`: a dataset per input (traces ingested unless already), its sweep
    unless sim/ holds it."""
    return Steps((dataset_task, (force,)), sim_options(options),
                 lambda dataset: sweep_is_current(dataset, options))


def ingest_steps(out: Path | None, kwargs: dict[str, Any]) -> Steps:
    """`replay ingest`: the ingest only (`out`: the one input's dataset directory)."""
    return Steps((ingest_task, (str(out.absolute()) if out else None, kwargs)))


def report_on_cluster(source: Path, html: Path | None, options: ReportOptions,
                      scheduler: str, force: bool = False, quiet: bool = False
                      ) -> tuple[Path, Path, Path]:
    """`replay report` of one input whose ingest and sweep run on the cluster."""
    run = _only(execute(trace_runs([source]), report_steps(options, force), scheduler,
                        quiet)[0])
    return make_report(source, html, options, force, quiet, dataset=run.dataset)


def simulate_on_cluster(dataset: Path, options: SimOptions, scheduler: str,
                        quiet: bool = False) -> SweepSummary:
    """`replay simulate` with each configuration group a task on the cluster."""
    read_meta(dataset)  # a one-line error here rather than on a worker
    run = _only(execute(trace_runs([dataset]), Steps(None, options), scheduler, quiet)[0])
    assert run.summary is not None
    return run.summary


def ingest_inputs(traces: list[Path], out: Path | None, kwargs: dict[str, Any],
                  scheduler: str | None, quiet: bool = False) -> list[TraceRun]:
    """`replay ingest` of several traces (`out` only with one)."""
    if kwargs.get("kallsyms"):  # a worker resolves a relative path from its own directory
        kwargs = {**kwargs, "kallsyms": Path(kwargs["kallsyms"]).absolute()}
    return execute(trace_runs(traces), ingest_steps(out, kwargs), scheduler, quiet)


def make_fleet_report(sources: list[Path], html: Path | None, options: ReportOptions,
                      scheduler: str | None = None, force: bool = False,
                      quiet: bool = False) -> tuple[tuple[Path, Path, Path], list[TraceRun]]:
    """Write the fleet report of `sources`; return its three files and every input's run
    (failed ones carry their error: the report lists them, the others complete)."""
    paths = report_paths(Path(html) if html else Path(FLEET_HTML))
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise OutputError(f"{existing[0]}: already exists (use --force to replace it)")
    if not paths[0].parent.is_dir():
        raise OutputError(f"{paths[0].parent}: no such directory")
    from replay.fleet.render import render_html, render_markdown
    from replay.fleet.report import fleet_report
    from replay.report.collect import collect

    runs = execute(trace_runs(sources), report_steps(options, force), scheduler, quiet)
    reports = {}
    for run in runs:
        if run.error is None:
            try:
                reports[run.label] = collect(run.dataset, options, source=run.source)
            except ReplayError as e:
                run.fail(str(e))
    rep = fleet_report(runs, reports, options)
    write_files(paths, (render_html(rep), render_markdown(rep),
                        json.dumps(rep, indent=1, default=str) + "\n"))
    return paths, runs
