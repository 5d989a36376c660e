"""The report's tables, defined once for the HTML and the Markdown renderers.

A table only selects figures from the report dict and names its columns; formatting a
value for humans is `cell()`'s one job. Both renderers print the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    """One column: the row key it shows, its header, and how to print the value."""

    key: str
    header: str
    kind: str = "int"  # int | float | pct | text | bool | link (URL in row[key + "_url"])


@dataclass(frozen=True)
class Table:
    """A titled table of rows (dicts) and the columns shown."""

    key: str
    title: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    note: str = ""


def cell(value: Any, kind: str) -> str:
    """A value as printed in a table cell; missing values print as an en dash."""
    if value is None:
        return "–" if kind != "pct" else "n/a"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "float":
        v = float(value)
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    if kind == "pct":
        v = 100 * float(value)
        return "100%" if v == 100 else f"{v:.2f}%"
    if kind == "bool":
        return "yes" if value else "no"
    return str(value)


def columns(*specs: tuple[str, str, str] | tuple[str, str]) -> tuple[Column, ...]:
    """Columns from `(key, header[, kind])` tuples (the fleet report's tables use it too)."""
    return tuple(Column(*s) for s in specs)


def provenance_table(fig: dict[str, Any]) -> Table:
    p = fig["provenance"]
    rows = [{"what": k, "value": v} for k, v in p["summary"]]
    return Table("provenance", "Provenance", columns(("what", "", "text"), ("value", "", "text")),
                 rows)


def demand_tables(fig: dict[str, Any]) -> list[Table]:
    d = fig["demand"]
    tables = [
        Table("orders", "Demand per order", columns(
            ("order", "order"), ("requests", "requests"), ("failed", "failed"),
            ("pages", "pages"), ("rate_per_s", "requests/s", "float"),
            ("atomic", "cannot sleep"), ("can_sleep", "can sleep")), d["orders"],
            "mm_page_alloc events; failed: no page returned. Cannot sleep: in irq context, "
            "GFP_ATOMIC, or no direct reclaim otherwise (GFP_NOWAIT, GFP_TRANSHUGE_LIGHT); "
            "can sleep: __GFP_DIRECT_RECLAIM."),
        Table("processes", f"Who asks: threads (orders ≥ {d['high_order']})", columns(
            ("comm", "comm", "text"), ("pid", "pid"), ("requests", "requests"),
            ("max_order", "largest order"), ("pages", "pages"), ("failed", "failed")),
            d["processes"]),
        Table("gfp", f"Who asks: gfp flags (orders ≥ {d['high_order']})", columns(
            ("gfp_flags", "gfp_flags", "text"), ("requests", "requests"),
            ("min_order", "orders from"), ("max_order", "to"), ("failed", "failed")),
            d["gfp"]),
    ]
    if d.get("call_paths"):
        tables.append(Table("call_paths", f"Who asks: call paths (orders ≥ {d['high_order']})",
                            columns(("order", "order"), ("requests", "requests"),
                               ("path", "call path (callee ← caller)", "text")),
                            d["call_paths"]))
    return tables


def candidate_table(fig: dict[str, Any]) -> Table:
    policies = fig["options"]["policies"]
    bar = fig["recommendation"]["bar"]
    cols = [("max_order", "N"), ("max_order_2001", "MAX_ORDER (2001)"),
            ("requests_above", "requests > N"), ("rate_above_per_s", "per s", "float"),
            ("pages_above", "pages"), ("fallback_requests", "fall back"),
            ("fallback_pages", "pages losing their large page"),
            ("memarea_requests", "must be contiguous"), ("impossible", "impossible"),
            ("satisfied_lower_bound", "✓ 95% lower bound", "pct")]
    cols += [(f"satisfied_{p}", f"{p} ✓", "pct") for p in policies]
    cols += [("false_failures", "false failures"),
             ("cost_p99_ms", "memarea p99 ms", "float"),
             ("worst_window_ms", "worst 1 s ms", "float"),
             ("observed_p99_ms", "observed p99 ms (cost only)", "float"),
             ("split_steps_saved", "split steps saved"),
             ("merge_steps_saved", "merge steps saved"),
             ("net_gain_ms", "net gain ms", "float"),
             ("pageblock_order", "pageblock order"), ("fallbacks", "migratetype fallbacks"),
             ("meets", "meets bar", "bool")]
    return Table("candidates", "Candidate max orders", columns(*cols), fig["candidate_rows"],
                 "Fall back: requests above N whose caller retries with smaller pages; "
                 "must be contiguous: those memarea must serve; impossible: those that "
                 "must be contiguous but cannot sleep. ✓ 95% lower bound: Wilson bound of "
                 f"the share memarea satisfies ({bar['mode']} mode, {bar['policy']} "
                 "policy, worst search); n/a: no request to serve. Point shares per "
                 "policy (requests above N, worst search) beside it. memarea ms: pages "
                 "scanned (linear search) and migrated at the measured per-page costs. "
                 "Observed mode is cost evidence only. Steps saved: against the traced "
                 "kernel's max order; net gain: buddy work saved minus memarea work "
                 "added. Migratetype fallbacks: pageblock_order = min(9, N).")


def requester_table(fig: dict[str, Any]) -> Table:
    return Table("requesters", "Requesters by kind", columns(
        ("title", "class", "text"), ("orders", "orders", "text"), ("requests", "requests"),
        ("pages", "pages"), ("failed", "failed"), ("cannot_sleep", "cannot sleep"),
        ("when_unavailable", "without the order", "text"),
        ("behaviour", "what the kernel does", "text"), ("source", "source", "link"),
        ("since", "since", "text")), fig.get("requester_classes", []),
        "Requests above the lowest candidate, classed by call path (when the trace has "
        "stacks), gfp flags and comm (replay/kernel/requesters.py, named query "
        "request_classes). Source lines: Linux v6.12.118.")


def class_outcome_table(fig: dict[str, Any]) -> Table:
    rows = []
    for c in fig["recommendation"]["candidates"]:
        for k in c["classes"]:
            rows.append({"max_order": c["max_order"], **k})
    return Table("class_outcomes", "Per candidate N and class: what happens to each request",
                 columns(("max_order", "N"), ("title", "class", "text"), ("requests", "requests"),
                    ("buddy", "buddy"), ("failed_in_kernel", "failed (as in kernel)"),
                    ("fallback", "fall back"), ("fallback_pages", "pages lost"),
                    ("contiguous", "must be contiguous"),
                    ("contiguous_satisfied", "memarea satisfied"),
                    ("contiguous_failed", "memarea failed"),
                    ("satisfied_after_kernel_failure", "of which kernel failed"),
                    ("impossible", "impossible")), rows,
                 "Every N judged on the same requests. Buddy: order <= N, served as in "
                 "the kernel; failed: order <= N and failed in the kernel, a failure at "
                 "every N >= its order. Above N: fall back (the class retries with smaller "
                 "pages; pages lost: pages of the large blocks not obtained), must be "
                 "contiguous (memarea, simulated mode, worst search), impossible (must be "
                 "contiguous, cannot sleep).")


def constraint_table(fig: dict[str, Any]) -> Table:
    return Table("constraints", "Hard constraints", columns(
        ("name", "constraint", "text"), ("min_order", "N at least"),
        ("why", "why", "text"), ("source", "source", "link")),
        fig["recommendation"]["constraints"])


def config_table(fig: dict[str, Any]) -> Table:
    return Table("configs", "Every configuration", columns(
        ("max_order", "N"), ("mode", "mode", "text"), ("policy", "policy", "text"),
        ("search", "search", "text"), ("requests", "requests"),
        ("satisfied_share", "satisfied", "pct"), ("memarea_free", "free"),
        ("memarea_reclaim", "reclaim"), ("memarea_migrate", "migrate"),
        ("failed", "failed"), ("false_failures", "false failures"),
        ("cost_p50", "cost p50", "float"), ("cost_p90", "p90", "float"),
        ("cost_p99", "p99", "float"), ("cost_max", "max", "float"),
        ("pages_reclaimed", "reclaimed"), ("pages_migrated", "migrated")), fig["configs"],
        "free / reclaim / migrate: requests memarea satisfied with free pages only, after "
        "reclaiming, after migrating. Cost: pages inspected (linear), free blocks of order N "
        "(coalesced), 64-bit bitmap words (bitmap).")


def buddy_table(fig: dict[str, Any]) -> Table:
    rows = [{**r, "label": "traced kernel" if r["baseline"] else ""} for r in fig["buddy"]]
    return Table("buddy", "Buddy allocator work (simulated)", columns(
        ("max_order", "N"), ("label", "", "text"), ("allocs", "allocs"), ("frees", "frees"),
        ("split_steps", "split steps"), ("merge_steps", "merge steps"),
        ("splits_per_alloc", "splits/alloc", "float"),
        ("merges_per_free", "merges/free", "float"),
        ("lists_per_alloc", "free lists probed/alloc", "float"),
        ("split_steps_saved", "splits saved"), ("merge_steps_saved", "merges saved"),
        ("fallbacks", "fallbacks")), rows,
        f"Policy {fig['recommendation']['bar']['policy']}, search "
        f"{fig['options']['searches'][0]}; saved: against the traced kernel's max order.")


def fragmentation_table(fig: dict[str, Any]) -> Table:
    return Table("fragmentation", "Fragmentation (observed)", columns(
        ("zone", "zone", "text"), ("order", "order"),
        ("unusable_start", "unusable index at start"), ("unusable_end", "at end"),
        ("fragindex_start", "fragmentation index at start"), ("fragindex_end", "at end"),
        ("largest_free_run_start", "largest free run at start"),
        ("largest_free_run_end", "at end")), fig["fragmentation"]["summary"],
        "Indices as the kernel computes and prints them (mm/vmstat.c), in thousandths; "
        "fragmentation index -1000: a block of that order was free. Largest free run in "
        "pages.")


def fidelity_rows(fid: dict[str, Any]) -> list[dict[str, Any]]:
    """The baseline's agreement with the trace and the snapshots, as (what, value) rows."""
    if not fid:
        return []
    share = fid["agreement_share"]
    bad = fid.get("inconsistencies") or {}
    rows = [
        ("baseline max order (the traced kernel's)", f"{fid['baseline_max_order']}"),
        ("kernel release / fallback era", f"{fid['kernel_release'] or 'unknown'} / "
                                          f"{fid['fallback_era']}"),
        ("untouched memory", fid["world_source"]
         + (" (an estimate)" if fid["world_estimate"] else "")),
        ("requests above order 3 whose simulated outcome equals the real one",
         "–" if share is None else f"{share:.2%} of {fid['requests_above_costly']:,}"),
        ("real failures / simulated failures",
         f"{fid['real_failed']:,} / {fid['sim_failed']:,}"),
        ("fallbacks simulated / mm_page_alloc_extfrag traced",
         f"{fid['fallbacks']:,} / {fid['extfrag']:,}"),
        ("trace inconsistencies", ", ".join(f"{k.replace('_', ' ')} {v:,}"
                                            for k, v in bad.items()) or "–"),
    ]
    return [{"what": w, "value": v} for w, v in rows]


def fidelity_table(fig: dict[str, Any]) -> Table:
    return Table("fidelity", "Model fidelity (baseline simulation vs the trace)",
                 columns(("what", "", "text"), ("value", "", "text")),
                 fidelity_rows(fig["fidelity"]))


def end_blocks_table(fig: dict[str, Any]) -> Table:
    """Per zone: free pages and blocks per order at trace start and end, model vs the
    kernel's buddyinfo (start equals buddyinfo by construction where seeded from it)."""
    zones = fig["fidelity"].get("zones") or {}
    rows = []
    for zone, z in zones.items():
        for when in ("start", "end"):
            for who in ("model", "proc"):
                blocks = z[f"{when}_blocks"][who]
                if blocks is None:
                    continue
                rows.append({"zone": zone, "when": when,
                             "who": "model" if who == "model" else "/proc/buddyinfo",
                             "pages": z[f"{when}_free_pages"][who],
                             **{f"o{o}": v for o, v in enumerate(blocks)}})
    orders = max((len(z["end_blocks"]["model"]) for z in zones.values()), default=0)
    return Table("end_blocks", "Free pages and blocks per order, per zone: model vs kernel",
                 columns(("zone", "zone", "text"), ("when", "when", "text"), ("who", "", "text"),
                    ("pages", "free pages"), *((f"o{o}", f"{o}") for o in range(orders))),
                 rows,
                 "model: the baseline simulation (N = the traced kernel's max order) at "
                 "trace start (the world as seeded) and end; /proc/buddyinfo: the kernel's "
                 "snapshots. Start equals buddyinfo by construction where the world was "
                 "seeded from it; the end is the test of the replay.")


def verdict_table(fig: dict[str, Any]) -> Table:
    return Table("verdicts", "Verdicts", columns(
        ("max_order", "N"), ("meets", "meets bar", "bool"),
        ("requests_above", "requests > N"), ("memarea_requests", "must be contiguous"),
        ("satisfied_share", "satisfied", "pct"),
        ("satisfied_lower_bound", "95% lower bound", "pct"),
        ("impossible", "impossible"), ("why", "why not", "text")),
        [{**v, "why": "; ".join(v["reasons"])} for v in fig["recommendation"]["candidates"]])


def all_tables(fig: dict[str, Any]) -> dict[str, Table]:
    """Every table of the report, by key, in reading order."""
    tables = [verdict_table(fig), constraint_table(fig), provenance_table(fig),
              *demand_tables(fig), requester_table(fig), candidate_table(fig),
              class_outcome_table(fig), config_table(fig), buddy_table(fig),
              fragmentation_table(fig), fidelity_table(fig), end_blocks_table(fig)]
    return {t.key: t for t in tables}
