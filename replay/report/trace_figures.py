"""The report's figures that need only the trace's events and stacks, not the sweep.

They are computed apart from the sweep's (`collect`) so that `replay report` can compute
them in its side process while the engine loads the stream and sweeps
(`side_process`): the demand per order and who asks, the requester classes, and every
high-order request classified (`classes.classified_requests`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from replay.database import Database, open_datasets
from replay.dataset import read_meta
from replay.report.classes import classified_requests
from replay.report.demand import collect_demand, named_rows
from replay.report.options import ReportOptions
from replay.report.provenance import duration_s


@dataclass
class TraceFigures:
    """The trace's own figures for a report with the given candidates."""

    demand: dict[str, Any]  # demand.collect_demand
    request_classes: list[dict[str, Any]]  # request_classes rows above the lowest candidate
    has_stacks: bool
    requests: pa.Table  # classes.classified_requests above the lowest candidate


def trace_figures(db: Database, options: ReportOptions, duration: float | None
                  ) -> TraceFigures:
    """The trace figures of the dataset open in `db` (one dataset), for `options`'
    candidates; `duration`: the traced seconds (rates), None when unknown."""
    low = min(options.max_orders)
    return TraceFigures(
        collect_demand(db, duration, low + 1),
        named_rows(db, "request_classes", min_order=low + 1),
        bool(db.sql("SELECT count(*) FROM stacks").fetchall()[0][0]),
        classified_requests(db, low))


def dataset_trace_figures(dataset: Path, options: ReportOptions, threads: int | None = None
                          ) -> TraceFigures:
    """`trace_figures` of `dataset`, opened for them alone with DuckDB's `threads` (the
    side process's work)."""
    with open_datasets([dataset], threads=threads) as db:
        return trace_figures(db, options, duration_s(read_meta(dataset)))
