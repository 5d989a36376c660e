"""The summary a `replay simulate` run prints: one line per configuration, and fidelity."""

from __future__ import annotations

from typing import Any, TextIO

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from replay.engine.fidelity import fidelity_lines
from replay.engine.observed import EVIDENCE
from replay.engine.simulate import SweepSummary


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def _num(v: Any, fmt: str = "{:.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def summary_table(runs: pa.Table) -> Table:
    """Rows: mode, N, search, policy; requests above N and where they went; cost; buddy work."""
    t = Table(title="replay simulate: requests above max order N", show_lines=False)
    for col, just in (("mode", "left"), ("N", "right"), ("search", "left"),
                      ("policy", "left"), ("req>N", "right"), ("free", "right"),
                      ("reclaim", "right"), ("migrate", "right"), ("failed", "right"),
                      ("false fail", "right"), ("real fail", "right"), ("cost p50", "right"),
                      ("cost p99", "right"), ("reclaimed", "right"), ("migrated", "right"),
                      ("split/alloc", "right"), ("merge/free", "right"),
                      ("fallbacks", "right")):
        t.add_column(col, justify=just)
    for r in runs.to_pylist():
        if r["search"] == "none":
            continue
        m = r["requests"]
        t.add_row(r["mode"], str(r["max_order"]), r["search"], r["policy"], str(m),
                  _pct(r["memarea_free"], m), _pct(r["memarea_reclaim"], m),
                  _pct(r["memarea_migrate"], m), str(r["failed"]), str(r["false_failures"]),
                  str(r["real_failed"]), _num(r["cost_p50"]), _num(r["cost_p99"]),
                  str(r["pages_reclaimed"]), str(r["pages_migrated"]),
                  _num(r["splits_per_alloc"], "{:.3f}"), _num(r["merges_per_free"], "{:.3f}"),
                  _num(r["fallbacks"]))
    return t


def summary_lines(summary: SweepSummary) -> list[str]:
    """The world, the fidelity figures and what observed mode can show."""
    lines = [f"layout: {summary.layout}",
             "trace inconsistencies: " + ", ".join(
                 f"{k} {v}" for k, v in summary.inconsistencies.items()),
             "max order N = largest order served, inclusive (N = MAX_ORDER - 1 in 2.4-era "
             "terms)",
             f"observed mode: {EVIDENCE}"]
    lines += fidelity_lines(summary.fidelity)
    lines.append(f"{summary.events} events, {len(summary.runs)} configurations in "
                 f"{summary.elapsed:.2f} s")
    return lines


def print_summary(summary: SweepSummary, file: TextIO | None = None) -> None:
    """Print the summary table and the fidelity figures (stdout by default)."""
    console = Console(file=file, width=200, highlight=False)
    console.print(summary_table(summary.runs))
    for line in summary_lines(summary):
        console.print(line, soft_wrap=True, markup=False)
