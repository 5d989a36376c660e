"""The fleet report as HTML and Markdown: the fleet's answer, who holds it back, each
machine's line, and the traces' tables combined (with a `trace` column). The tables are
`replay.report.tables` Tables, printed by the single-trace report's own renderers."""

from __future__ import annotations

from html import escape
from typing import Any

from replay.report.html import page, table_html
from replay.report.markdown import table_markdown
from replay.report.tables import Table, columns

TITLE = "Can the fleet's buddy allocator max order be lowered?"


def machine_table(rep: dict[str, Any]) -> Table:
    return Table("machines", "Machines", columns(
        ("trace", "trace", "text"), ("status", "status", "text"), ("kernel", "kernel", "text"),
        ("duration_s", "seconds", "float"), ("events", "events"),
        ("max_order", "its max order"), ("enough_evidence", "enough evidence", "bool"),
        ("agreement_share", "model agreement", "pct"), ("reason", "why", "text"),
        ("error", "error", "text")), rep["traces"],
        "Its max order: the lowest N meeting the bar on that machine alone (its own "
        "report, in report.json per_trace).")


def held_back_table(rep: dict[str, Any]) -> Table:
    rows = []
    for h in rep["fleet"]["held_back"]:
        for m in h["machines"]:
            rows.append({
                "max_order": h["max_order"], "trace": m["trace"],
                "reasons": "; ".join(m["reasons"]),
                "classes": ", ".join(f"{k['title']} ({k['contiguous_failed'] or 0} unserved,"
                                     f" {k['impossible']} impossible)" for k in m["classes"]),
                "call_paths": "; ".join(f"order {p['order']} ×{p['requests']}: {p['path']}"
                                        for p in m["call_paths"])})
    return Table("held_back", "Who holds each lower N back", columns(
        ("max_order", "N"), ("trace", "machine", "text"), ("reasons", "why not", "text"),
        ("classes", "requesters memarea cannot serve", "text"),
        ("call_paths", "busiest call paths above N", "text")), rows,
        "Every candidate below the fleet's answer (all of them when there is none), and "
        "each machine on which it misses the bar.")


def combined_tables(rep: dict[str, Any]) -> list[Table]:
    c = rep["combined"]
    return [
        Table("fleet_orders", "Demand per order, the fleet summed", columns(
            ("order", "order"), ("traces", "traces"), ("requests", "requests"),
            ("failed", "failed"), ("pages", "pages"), ("atomic", "cannot sleep"),
            ("can_sleep", "can sleep")), c["fleet_orders"]),
        Table("orders", "Demand per order and trace", columns(
            ("trace", "trace", "text"), ("order", "order"), ("requests", "requests"),
            ("failed", "failed"), ("pages", "pages"), ("rate_per_s", "requests/s", "float"),
            ("atomic", "cannot sleep"), ("can_sleep", "can sleep")), c["orders"]),
        Table("candidates", "Candidate max orders per trace", columns(
            ("trace", "trace", "text"), ("max_order", "N"),
            ("requests_above", "requests > N"), ("fallback_requests", "fall back"),
            ("memarea_requests", "must be contiguous"), ("impossible", "impossible"),
            ("satisfied_lower_bound", "✓ 95% lower bound", "pct"),
            ("cost_p99_ms", "memarea p99 ms", "float"), ("net_gain_ms", "net gain ms", "float"),
            ("meets", "meets bar", "bool")), c["candidate_rows"]),
        Table("requesters", "Requesters by kind per trace", columns(
            ("trace", "trace", "text"), ("title", "class", "text"), ("orders", "orders", "text"),
            ("requests", "requests"), ("failed", "failed"), ("cannot_sleep", "cannot sleep")),
            c["requester_classes"]),
    ]


def delta_tables(rep: dict[str, Any]) -> list[Table]:
    d = rep["deltas"]
    if d is None:
        return []
    a, b = d["a"], d["b"]
    return [
        Table("delta_orders", f"Demand per order: {b} against {a}", columns(
            ("order", "order"), ("requests_a", f"requests {a}"), ("requests_b", f"{b}"),
            ("requests_delta", "Δ"), ("failed_a", f"failed {a}"), ("failed_b", f"{b}"),
            ("failed_delta", "Δ"), ("pages_delta", "pages Δ")), d["orders"]),
        Table("delta_candidates", f"Candidates: {b} against {a}", columns(
            ("max_order", "N"), ("meets_a", f"meets {a}", "bool"),
            ("meets_b", f"meets {b}", "bool"), ("requests_above_delta", "requests > N Δ"),
            ("memarea_requests_delta", "must be contiguous Δ"),
            ("satisfied_lower_bound_a", f"✓ bound {a}", "pct"),
            ("satisfied_lower_bound_b", f"{b}", "pct"),
            ("cost_p99_ms_delta", "memarea p99 ms Δ", "float"),
            ("net_gain_ms_delta", "net gain ms Δ", "float")), d["candidates"],
            f"Δ: {b} minus {a}. Max order {a}: {d['max_order']['a']}, "
            f"{b}: {d['max_order']['b']}."),
    ]


def all_tables(rep: dict[str, Any]) -> list[Table]:
    """Every table of the fleet report, in reading order."""
    return [machine_table(rep), held_back_table(rep), *delta_tables(rep),
            *combined_tables(rep)]


def _failed_lines(rep: dict[str, Any]) -> list[str]:
    return [f"{t['trace']} failed: {t['error']}" for t in rep["traces"]
            if t["status"] == "failed"]


def render_markdown(rep: dict[str, Any]) -> str:
    """The fleet report as Markdown."""
    f = rep["fleet"]
    parts = [f"# {TITLE}\n", f"**{f['headline']}**\n",
             f"Bar: {rep['options']['bar']['text']}.\n",
             "".join(f"- {line}\n" for line in _failed_lines(rep)),
             f"_{rep['max_order_readings']}_\n"]
    parts += [f"## {t.title}\n\n{table_markdown(t)}" for t in all_tables(rep)]
    parts.append(f"\n{rep['tool']} · generated {rep['generated']} · every figure, and each "
                 "trace's whole report, in the .json file beside this one\n")
    return "\n".join(parts)


def render_html(rep: dict[str, Any]) -> str:
    """The fleet report as one self-contained page."""
    f = rep["fleet"]
    cls = "none" if f["max_order"] is None else ""
    failed = "".join(f"<li>{escape(line)}</li>" for line in _failed_lines(rep))
    body = "".join([
        f"<h1>{escape(TITLE)}</h1>",
        f'<div class="verdict {cls}"><p class="big">{escape(f["headline"])}</p>'
        f'<p><b>Bar:</b> {escape(rep["options"]["bar"]["text"])}.</p>'
        f"<ul>{failed}</ul></div>",
        f'<p class="note">{escape(rep["max_order_readings"])}</p>',
        *(f"<section><h2>{escape(t.title)}</h2>{table_html(t)}</section>"
          for t in all_tables(rep)),
        f'<footer>{escape(rep["tool"])} · generated {escape(rep["generated"])} · every '
        "figure, and each trace's whole report, in the .json file beside this page</footer>",
    ])
    return page("replay fleet report", body)
