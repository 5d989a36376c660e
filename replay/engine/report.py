"""The summary a `replay simulate` run prints: one line per configuration, and fidelity."""

from __future__ import annotations

from typing import Any, TextIO

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from replay.engine.end_state import agreement_lines


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


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


def fidelity_lines(summary: dict[str, Any]) -> list[str]:
    """The baseline (traced kernel's max order) against reality."""
    f = summary["fidelity"]
    base = next(r for r in summary["runs"].to_pylist() if r["search"] == "none")
    lines = [
        f"layout: {summary['layout']}",
        f"start state: {summary['start_counts'][0]} pages free, "
        f"{summary['start_counts'][1]} allocated before the trace, "
        f"{summary['start_counts'][2]} never seen (from {summary['unseen_source']}: "
        f"{summary['unseen_free']} of them free)",
        "trace inconsistencies: " + ", ".join(
            f"{k} {v}" for k, v in summary["inconsistencies"].items()),
        f"max order N = largest order served, inclusive (N = MAX_ORDER - 1 in 2.4-era "
        f"terms); baseline N = {base['max_order']}",
    ]
    if f["agreement_share"] is not None:
        lines.append(
            f"fidelity: baseline outcome equals the real one for {f['agreement']} of "
            f"{f['high_order_requests']} requests above order 3 "
            f"({100 * f['agreement_share']:.1f}%; real failures {f['real_failed']}, "
            f"simulated failures {f['sim_failed']})")
    else:
        lines.append("fidelity: no request above order 3 in the trace")
    lines.append(f"fidelity: fallbacks simulated {f['fallbacks']} vs "
                 f"mm_page_alloc_extfrag traced {f['extfrag']}")
    lines.append(f"free blocks per order at trace end, simulated: {f['end_blocks_simulated']}")
    lines.append(f"                              observed:  {f['end_blocks_observed']}")
    if f["end_blocks_buddyinfo"] is not None:
        lines.append(f"                    /proc/buddyinfo end: {f['end_blocks_buddyinfo']}")
    lines += agreement_lines(f["end_blocks_by_zone"])
    lines.append(f"{summary['events']} events, {len(summary['runs'])} configurations in "
                 f"{summary['elapsed']:.2f} s")
    return lines


def print_summary(summary: dict[str, Any], file: TextIO | None = None) -> None:
    """Print the summary table and the fidelity figures (stdout by default)."""
    console = Console(file=file, width=200, highlight=False)
    console.print(summary_table(summary["runs"]))
    for line in fidelity_lines(summary):
        console.print(line, soft_wrap=True)
