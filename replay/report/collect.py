"""Gather every figure of a report into one dict (written as report.json).

Demand comes from the query layer's named queries (`demand`), the sweep's figures from
the engine's outputs: its `runs` and `series` views and the `memarea_cost` query over
its `requests` (`sweep`); provenance from meta.json (`provenance`). This module assembles
them, sums per-order demand above each candidate N, and asks `recommend` for the verdict.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from replay import __version__
from replay.database import open_datasets
from replay.dataset import read_meta
from replay.kernel.procfs import find_snapshot
from replay.report.demand import above, collect_demand
from replay.report.options import ReportOptions
from replay.report.provenance import MAX_ORDER_READINGS, provenance
from replay.report.recommend import recommend, worst_share
from replay.report.sweep import COST_UNITS, collect_sweep, cost_distribution

REPORT_VERSION = 1


def candidates(options: ReportOptions, orders: list[dict[str, Any]],
               configs: list[dict[str, Any]], duration_s: float | None
               ) -> list[dict[str, Any]]:
    """One entry per candidate max order N: the demand above N and its configurations."""
    out = []
    for n in options.max_orders:
        req = above(orders, n, "requests")
        out.append({
            "max_order": n,
            "max_order_2001": n + 1,
            "requests_above": req,
            "rate_above_per_s": req / duration_s if duration_s else None,
            "pages_above": above(orders, n, "pages"),
            "atomic_above": above(orders, n, "atomic"),
            "context_unknown_above": above(orders, n, "context_unknown"),
            "configs": [c for c in configs if c["max_order"] == n],
        })
    return out


def candidate_row(cand: dict[str, Any], verdict: dict[str, Any], options: ReportOptions,
                  buddy: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The candidate table's row: the bar's mode, worst search per policy."""
    bar = options.bar
    row = {k: v for k, v in cand.items() if k != "configs"}
    for p in options.policies:
        row[f"satisfied_{p}"] = worst_share(cand, p, bar.mode)
    ff = [c["false_failures"] for c in cand["configs"]
          if c["policy"] == bar.policy and c["mode"] == bar.mode]
    row["false_failures"] = max(ff) if ff else (0 if cand["requests_above"] == 0 else None)
    work = buddy.get(cand["max_order"], {})
    row["split_steps_saved"] = work.get("split_steps_saved")
    row["merge_steps_saved"] = work.get("merge_steps_saved")
    row["meets"] = verdict["meets"]
    return row


def evidence(rec: dict[str, Any], cands: list[dict[str, Any]], options: ReportOptions
             ) -> list[str]:
    """The figures beside the recommendation: what N asks of memarea, and why not lower."""
    by_n = {v["max_order"]: v for v in rec["verdicts"]}
    cand_n = {c["max_order"]: c for c in cands}
    n = rec["max_order"]
    bar = options.bar
    out = []
    if n is not None:
        c, v = cand_n[n], by_n[n]
        rate = c["rate_above_per_s"]
        out.append(f"{c['requests_above']:,} requests above order {n}"
                   + (f" ({rate:.3g}/s)" if rate is not None else "")
                   + f", {c['pages_above']:,} pages; {v['atomic_above']:,} cannot sleep")
        mine = [x for x in c["configs"] if x["policy"] == bar.policy and x["mode"] == bar.mode]
        if c["requests_above"] and mine:
            out.append(f"memarea ({bar.policy}) satisfies {v['satisfied_share']:.2%} of them; "
                       f"false failures: {max(x['false_failures'] for x in mine):,}")
            out.append("search cost p50 / p99: " + "; ".join(
                f"{x['search']} {_num(x['cost_p50'])} / {_num(x['cost_p99'])} "
                f"{COST_UNITS[x['search']]}" for x in mine))
            moved = max(x["pages_reclaimed"] + x["pages_migrated"] for x in mine)
            out.append(f"pages reclaimed + migrated: {moved:,}")
    lower = [v for v in rec["verdicts"] if n is None or v["max_order"] < n]
    if lower:
        v = lower[-1]
        out.append(f"N = {v['max_order']} fails the bar: " + "; ".join(v["reasons"]))
    return out


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}"


def caveats(prov: dict[str, Any], sweep: dict[str, Any], cands: list[dict[str, Any]],
            layout_inferred: bool) -> list[str]:
    """What the reader must keep in mind: losses, unknowns, inferences."""
    out = []
    if prov["lost_events"] or prov["lost_unknown_cpus"]:
        out.append(f"{prov['lost_events']:,} events were lost"
                   + (f" (and an unknown number on CPUs {prov['lost_unknown_cpus']})"
                      if prov["lost_unknown_cpus"] else "")
                   + ": allocations and frees around the losses may be mispaired.")
    unknown = max((c["context_unknown_above"] for c in cands), default=0)
    if unknown:
        out.append(f"{unknown:,} requests above the lowest candidate carry raw hex gfp "
                   "flags: whether they can sleep is unknown; they do not count as atomic.")
    if prov["duration_s"] is None:
        out.append("The trace clock is not in nanoseconds or the span is unknown: rates "
                   "are not given.")
    fid = sweep["fidelity"]
    if fid.get("pages_unknown"):
        out.append(f"{fid['pages_unknown']:,} pages of the layout never appear in the trace: "
                   f"their initial state is unknown and the replay treats them as "
                   f"{fid['unknown']} (engine option --unknown).")
    bad = {k: fid.get(k) for k in ("double_alloc", "free_of_free", "order_mismatch")}
    if any(bad.values()):
        out.append("The trace is inconsistent in places (" + ", ".join(
            f"{k.replace('_', ' ')} {v:,}" for k, v in bad.items() if v)
            + "): the replay counts and skips them.")
    if layout_inferred:
        out.append("No zoneinfo snapshot: the memory layout (zones and their pfn ranges) "
                   "was inferred from the pfns the trace touched, as one zone.")
    if not sweep["configs"]:
        out.append("No replay results for these options: no memarea figures.")
    empty = sweep["fragmentation"].get("zones_without_free_pages")
    if empty:
        out.append(f"Zones {', '.join(empty)} had no free page the trace could see at any "
                   "time: they are left out of the fragmentation figures.")
    out.append("Only the traced interval is seen: requests outside it, and pages the "
               "trace never touches, shape real memory in ways the replay can only "
               "approximate.")
    return out


def _cost_order(rec: dict[str, Any], cands: list[dict[str, Any]]) -> int | None:
    """The N whose cost distribution is plotted: the recommended one, else the lowest
    candidate with requests above it."""
    if rec["max_order"] is not None and any(
            c["requests_above"] for c in cands if c["max_order"] == rec["max_order"]):
        return rec["max_order"]
    return next((c["max_order"] for c in cands if c["requests_above"]), None)


def collect(dataset: Path, options: ReportOptions, source: Path | None = None
            ) -> dict[str, Any]:
    """Every figure of the report of `dataset` (already swept with `options`)."""
    meta = read_meta(dataset)
    prov = provenance(dataset, meta, source or dataset, options.snapshot_dir(dataset))
    with open_datasets([dataset]) as db:
        demand = collect_demand(db, prov["duration_s"], min(options.max_orders) + 1)
        sweep = collect_sweep(db, options)
        cands = candidates(options, demand["orders"], sweep["configs"], prov["duration_s"])
        rec = recommend(cands, options.bar)
        cost = cost_distribution(db, options, _cost_order(rec, cands))
    rec["evidence"] = evidence(rec, cands, options)
    buddy = {b["max_order"]: b for b in sweep["buddy"] if not b["baseline"]}
    rows = [candidate_row(c, v, options, buddy) for c, v in zip(cands, rec["verdicts"])]
    return {
        "report_version": REPORT_VERSION,
        "tool": f"replay {__version__}",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": options.as_dict(),
        "max_order_readings": MAX_ORDER_READINGS,
        "provenance": prov,
        "demand": demand,
        "candidates": cands,
        "candidate_rows": rows,
        "configs": sweep["configs"],
        "buddy": sweep["buddy"],
        "cost_distribution": cost,
        "fragmentation": sweep["fragmentation"],
        "fidelity": sweep["fidelity"],
        "recommendation": rec,
        "caveats": caveats(prov, sweep, cands, find_snapshot(
            options.snapshot_dir(dataset), "start", "zoneinfo") is None),
    }
