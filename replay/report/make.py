"""`replay report`: trace or dataset → sweep → report.html, report.md and report.json.

This module only sequences the steps; ingesting is `replay.ingestion`, the sweep is the
engine's, the figures come from `collect`, the verdict from `recommend`, and each output
format has its own renderer.
"""

from __future__ import annotations

import json
from pathlib import Path

from replay.atomic import write_files
from replay.dataset import default_output, is_dataset, read_meta
from ingest.errors import InputError, OutputError
from replay.report.options import ReportOptions
from replay.report.side_process import Side, side_process


def report_paths(html: Path) -> tuple[Path, Path, Path]:
    """report.html and, side by side, report.md and report.json."""
    return html, html.with_suffix(".md"), html.with_suffix(".json")


def dataset_for(source: Path, force: bool, quiet: bool) -> Path:
    """The dataset to report on: `source` itself, or the dataset of trace `source`.

    A trace is ingested into its default dataset directory; an existing one is reused when
    it was made from the same bytes (same sha256), and replaced only with `force`.
    """
    if source.is_dir():
        read_meta(source)  # raises a one-line InputError when it is not a dataset
        return source
    if not source.exists():
        raise InputError(source, "no such trace or dataset")
    out = default_output(source)
    from replay.ingestion import ingest, sha256_of

    if is_dataset(out) and not force:
        if read_meta(out).get("source", {}).get("sha256") == sha256_of([source]):
            return out
        raise OutputError(f"{out}: exists but was made from another file "
                          "(use --force to ingest again)")

    return ingest(source, out, force=True, quiet=quiet)


def make_report(source: Path, html: Path | None, options: ReportOptions,
                force: bool = False, quiet: bool = False,
                dataset: Path | None = None) -> tuple[Path, Path, Path]:
    """Write the report of `source` (trace or dataset); return the three files written.
    `dataset`: the dataset of `source` when it is already made (by a fleet's task)."""
    source = Path(source)
    with side_process() as side:  # matplotlib loads beside the ingest
        return _make_report(source, html, options, force, quiet, dataset, side)


def _make_report(source: Path, html: Path | None, options: ReportOptions, force: bool,
                 quiet: bool, dataset: Path | None, side: Side) -> tuple[Path, Path, Path]:
    """`make_report`'s steps, the trace figures and the plots by `side`."""
    from replay.engine.warmup import compiling_beside
    from replay.report.sweep import sim_options

    with compiling_beside(sim_options(options), quiet):  # the engine compiles beside the ingest
        dataset = dataset or dataset_for(source, force, quiet)
    paths = report_paths(Path(html) if html else dataset / "report.html")
    if paths[0].is_dir():
        raise OutputError(f"{paths[0]}: is a directory; give the report's file name, "
                          f"e.g. {paths[0] / 'report.html'}")
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise OutputError(f"{existing[0]}: already exists (use --force to replace it)")
    if not paths[0].parent.is_dir():
        raise OutputError(f"{paths[0].parent}: no such directory")
    # the figures and renderers load only once the inputs and outputs are known good (the
    # engine loaded before the ingest, to compile beside it on a first run)
    from replay.report.collect import collect
    from replay.report.html import render_html
    from replay.report.markdown import render_markdown
    from replay.report.sweep import ensure_sweep

    side.begin_trace_figures(dataset, options)  # the trace's figures beside the sweep
    ensure_sweep(dataset, options, quiet=quiet)
    side.begin_series_plots(dataset, options)  # drawn while the figures are gathered
    rep = collect(dataset, options, source=source, trace=side.trace_figures())
    texts = (render_html(rep, side.plots(rep)), render_markdown(rep),
             json.dumps(rep, indent=1, default=str) + "\n")
    write_files(paths, texts)
    return paths
