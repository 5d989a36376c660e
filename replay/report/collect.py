"""Gather every figure of a report into one dict (written as report.json).

The trace's own figures (demand from the query layer's named queries, the requester
classes: `trace_figures`) may come ready from the side process; the sweep's figures from
the engine's outputs: its `runs` and `series` views and the `memarea_cost` query over
its `requests` (`sweep`); provenance from meta.json (`provenance`). This module assembles
them, sums per-order demand above each candidate N, and asks `recommend` for the verdict.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from replay import __version__
from replay.database import open_datasets
from replay.dataset import read_meta
from replay.kernel.procfs import find_snapshot
from replay.kernel.requesters import BY_NAME
from replay.report.classes import class_outcomes
from replay.report.demand import above
from replay.report.options import ReportOptions
from replay.report.provenance import MAX_ORDER_READINGS, provenance
from replay.report.recommend import Candidate, Recommendation, evidence, recommend
from replay.report.sweep import collect_sweep, cost_distribution
from replay.report.trace_figures import TraceFigures, trace_figures

REPORT_VERSION = 2


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


def candidate_row(cand: dict[str, Any], verdict: Candidate, options: ReportOptions
                  ) -> dict[str, Any]:
    """The candidate table's row: demand above N, the bar's figures, worst search per
    policy (point shares, for comparison), buddy work saved."""
    bar = options.bar
    row = {k: v for k, v in cand.items() if k != "configs"}
    for p in options.policies:
        row[f"satisfied_{p}"] = worst_share(cand, p, bar.mode)
    ff = [c["false_failures"] for c in cand["configs"]
          if c["policy"] == bar.policy and c["mode"] == bar.mode]
    row["false_failures"] = max(ff) if ff else None
    row["memarea_requests"] = verdict.memarea_requests
    row["satisfied_lower_bound"] = verdict.satisfied_lower_bound
    row["impossible"] = verdict.impossible
    row["fallback_requests"] = sum(x.fallback for x in verdict.classes)
    row["fallback_pages"] = sum(x.fallback_pages for x in verdict.classes)
    row["cost_p99_ms"] = None if verdict.cost.ns_p99 is None else verdict.cost.ns_p99 / 1e6
    row["worst_window_ms"] = (None if verdict.cost.worst_window_ns is None
                              else verdict.cost.worst_window_ns / 1e6)
    row["observed_p99_ms"] = (None if verdict.cost.observed_ns_p99 is None
                              else verdict.cost.observed_ns_p99 / 1e6)
    g = verdict.gain
    row["split_steps_saved"] = g.split_steps_saved
    row["merge_steps_saved"] = g.merge_steps_saved
    row["net_gain_ms"] = None if g.net_ns is None else g.net_ns / 1e6
    row["fallbacks"] = g.fallbacks
    row["pageblock_order"] = verdict.pageblock_order
    row["meets"] = verdict.meets
    return row


def worst_share(candidate: dict[str, Any], policy: str, mode: str) -> float | None:
    """The point share of the requests above N that memarea satisfies under `policy`
    and `mode`, worst over the searches; None when there is nothing above N ("n/a") or
    a result is missing."""
    shares = [c["satisfied_share"] for c in candidate["configs"]
              if c["policy"] == policy and c["mode"] == mode]
    return None if not shares or None in shares else min(shares)


def touched_share(fid: dict[str, Any], layout_inferred: bool) -> float | None:
    """Share of the zones' pages the trace touched; None when the layout was inferred
    from the trace itself (then it is 100 % by construction)."""
    if layout_inferred or not fid or not fid.get("zones"):
        return None
    zones = fid["zones"].values()
    managed = sum(z["managed"] for z in zones)
    return sum(z["seen_pages"] for z in zones) / managed if managed else None


def requester_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The requester classes the trace holds (request_classes rows summed per class),
    each with what the kernel does without its order and the source line it rests on."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        k = BY_NAME[r["class"]]
        c = out.setdefault(k.name, {
            "class": k.name, "title": k.title, "when_unavailable": k.when_unavailable,
            "behaviour": k.behaviour, "source": str(k.source), "source_url": k.source.url,
            "since": k.since, "orders": [], "requests": 0, "pages": 0, "failed": 0,
            "cannot_sleep": 0})
        c["orders"].append(r["order"])
        for f in ("requests", "pages", "failed", "cannot_sleep"):
            c[f] += r[f]
    for c in out.values():
        c["orders"] = ", ".join(map(str, sorted(set(c["orders"]))))
    return list(out.values())


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
    if fid.get("world_estimate"):
        out.append(f"The memory the trace never touches is an estimate ({fid['world_source']}): "
                   "record with `replay record --kpageflags` for the real page states.")
    out += [f"Model: {n}." for n in fid.get("notes", [])]
    bad = fid.get("inconsistencies") or {}
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


def _cost_order(rec: Recommendation, cands: list[dict[str, Any]]) -> int | None:
    """The N whose cost distribution is plotted: the recommended one, else the lowest
    candidate with requests above it."""
    if rec.max_order is not None and any(
            c["requests_above"] for c in cands if c["max_order"] == rec.max_order):
        return rec.max_order
    return next((c["max_order"] for c in cands if c["requests_above"]), None)


def collect(dataset: Path, options: ReportOptions, source: Path | None = None,
            trace: TraceFigures | None = None) -> dict[str, Any]:
    """Every figure of the report of `dataset` (already swept with `options`); `trace`:
    its trace figures when already computed (by the side process), else computed here."""
    meta = read_meta(dataset)
    prov = provenance(dataset, meta, source or dataset, options.snapshot_dir(dataset))
    inferred = find_snapshot(options.snapshot_dir(dataset), "start", "zoneinfo") is None
    bar = options.bar
    low = min(options.max_orders)
    with open_datasets([dataset]) as db:
        if trace is None:
            trace = trace_figures(db, options, prov["duration_s"])
        demand = trace.demand
        sweep = collect_sweep(db, options, dataset)
        cands = candidates(options, demand["orders"], sweep["configs"], prov["duration_s"])
        by_class = class_outcomes(db, trace.requests, options.max_orders, options.searches,
                                  bar.policy)
        buddy = {b["max_order"]: b for b in sweep["buddy"] if not b["baseline"]}
        baseline = next((b for b in sweep["buddy"] if b["baseline"]), None)
        ev = evidence(prov["duration_s"], above(demand["orders"], low, "requests"), low,
                      touched_share(sweep["fidelity"], inferred), bar, trace.has_stacks,
                      not inferred)
        rec = recommend(by_class, ev, bar, buddy, baseline, options.assume_no_thp)
        cost = cost_distribution(db, options, _cost_order(rec, cands))
    verdicts = {c.max_order: c for c in rec.candidates}
    rows = [candidate_row(c, verdicts[c["max_order"]], options) for c in cands]
    return {
        "report_version": REPORT_VERSION,
        "tool": f"replay {__version__}",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": options.as_dict(),
        "max_order_readings": MAX_ORDER_READINGS,
        "provenance": prov,
        "demand": demand,
        "requester_classes": requester_table(trace.request_classes),
        "candidates": cands,
        "candidate_rows": rows,
        "configs": sweep["configs"],
        "buddy": sweep["buddy"],
        "cost_distribution": cost,
        "fragmentation": sweep["fragmentation"],
        "fidelity": sweep["fidelity"],
        "recommendation": asdict(rec),
        "caveats": caveats(prov, sweep, cands, inferred),
    }
