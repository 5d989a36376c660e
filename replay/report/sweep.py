"""The sweep behind a report: run by the engine, its figures selected from its outputs.

`ensure_sweep` runs `replay.engine.simulate.run_sweep` unless DATASET/sim already holds
results of the same options. `collect_sweep` selects the report's figures from the
engine's `runs` view (one row per configuration), its `series` view (fragmentation over
time) and the query layer's `memarea_cost` query; the only arithmetic here is the
difference of buddy steps against the baseline.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from replay.database import Database
from replay.engine.options import SimOptions
from replay.engine.observed import INCONSISTENCIES
from replay.engine.simulate import SIM_DIR, run_sweep
from replay.kernel.requesters import HPAGE_PMD_ORDER
from replay.report.demand import named_rows
from replay.report.options import ReportOptions

#: pageblock_order of the traced kernel on x86-64: HPAGE_PMD_ORDER with 4K pages.
PAGEBLOCK_ORDER = HPAGE_PMD_ORDER
#: Unit of each search's cost (docs/design.md §6).
COST_UNITS = {"linear": "pages", "coalesced": "blocks", "bitmap": "words"}
#: SimOptions fields that change no result (how the sweep runs, not what it computes).
_NO_EFFECT = ("check", "jobs")
#: runs columns of one configuration shown in the report.
CONFIG_COLUMNS = ("mode", "max_order", "search", "policy", "requests", "success_share",
                  "buddy", "memarea_free", "memarea_reclaim", "memarea_migrate", "failed",
                  "false_failures", "true_failures", "real_failed", "cost_p50", "cost_p90",
                  "cost_p99", "cost_max", "pages_reclaimed", "pages_migrated")
BUDDY_COLUMNS = ("max_order", "allocs", "frees", "split_steps", "merge_steps",
                 "lists_probed", "splits_per_alloc", "merges_per_free", "lists_per_alloc",
                 "fallbacks")


def sim_options(options: ReportOptions) -> SimOptions:
    """The engine's options for the report's sweep (both modes, engine defaults else)."""
    return SimOptions(max_orders=options.max_orders, searches=options.searches,
                      policies=options.policies, snapshots=options.snapshots)


def _effective(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in json.loads(json.dumps(d)).items() if k not in _NO_EFFECT}


def existing_options(dataset: Path) -> dict[str, Any] | None:
    """The options of the results in DATASET/sim, if any."""
    path = dataset / SIM_DIR / "options.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def sweep_is_current(dataset: Path, options: ReportOptions) -> bool:
    """Whether DATASET/sim holds results of these options."""
    have = existing_options(dataset)
    return have is not None and _effective(have) == _effective(asdict(sim_options(options)))


def ensure_sweep(dataset: Path, options: ReportOptions, quiet: bool = False) -> bool:
    """Run the engine's sweep over `dataset` unless sim/ holds results of these options.

    Returns whether existing results were reused.
    """
    if sweep_is_current(dataset, options):
        return True
    run_sweep(dataset, sim_options(options), quiet=quiet)
    return False


def _rows(db: Database, sql: str, params: dict[str, Any] | None = None
          ) -> list[dict[str, Any]]:
    rel = db.sql(sql, params)
    return [dict(zip(rel.columns, row)) for row in rel.fetchall()]


def configs(db: Database, options: ReportOptions) -> list[dict[str, Any]]:
    """One row per swept configuration (runs), the report's options only."""
    cols = ", ".join(f'"{c}"' for c in CONFIG_COLUMNS)
    rows = _rows(db, f"SELECT {cols} FROM runs WHERE search <> 'none'")
    rows = [{**r, "satisfied_share": r.pop("success_share")} for r in rows
            if r["max_order"] in options.max_orders and r["search"] in options.searches
            and r["policy"] in options.policies]
    modes = ("simulated", "observed")
    return sorted(rows, key=lambda r: (r["max_order"], modes.index(r["mode"]),
                                       options.policies.index(r["policy"]),
                                       options.searches.index(r["search"])))


def buddy_work(db: Database, options: ReportOptions) -> list[dict[str, Any]]:
    """Simulated buddy work per max order (the bar's policy, first search), and the
    baseline's (the traced kernel's max order), with the split and merge steps saved."""
    cols = ", ".join(f'"{c}"' for c in BUDDY_COLUMNS)
    base = _rows(db, f"SELECT {cols}, true AS baseline FROM runs WHERE search = 'none'")
    rows = _rows(db, f"SELECT {cols}, false AS baseline FROM runs WHERE mode = 'simulated' "
                 "AND search = $s AND policy = $p ORDER BY max_order",
                 {"s": options.searches[0], "p": options.bar.policy})
    if base:
        b = base[0]
        for r in rows:
            r["split_steps_saved"] = b["split_steps"] - r["split_steps"]
            r["merge_steps_saved"] = b["merge_steps"] - r["merge_steps"]
    return base + rows


def fidelity(db: Database, dataset: Path) -> dict[str, Any]:
    """The engine's fidelity figures (sim/fidelity.json: the baseline and the world against
    the trace and the /proc snapshots, per zone), and the trace's inconsistencies."""
    try:
        fid = json.loads((dataset / SIM_DIR / "fidelity.json").read_text())
    except (OSError, ValueError):
        return {}
    rows = _rows(db, "SELECT * FROM runs WHERE search = 'none'")
    if rows:
        fid["inconsistencies"] = {k: rows[0].get(k) for k in INCONSISTENCIES}
    return fid


def fragmentation(db: Database, options: ReportOptions) -> dict[str, Any]:
    """Observed fragmentation over time (the `series` view): per zone, the unusable free
    space index and fragmentation index at the lowest order memarea would serve and at
    the pageblock order, and the largest free run."""
    out: dict[str, Any] = {"series": [], "largest_free_run": [], "summary": [], "orders": []}
    obs = _rows(db, "SELECT * FROM series WHERE mode = 'observed' ORDER BY event_index")
    if not obs:
        return out
    first = obs[0]
    obs = [r for r in obs if (r["max_order"], r["search"], r["policy"])
           == (first["max_order"], first["search"], first["policy"])]
    top = max(r["order"] for r in obs)
    # the observed state is the same whatever N: order o's index is the kernel's for o.
    # Shown: the lowest order memarea would serve, and the pageblock order (THP size).
    orders = sorted({min(min(options.max_orders) + 1, top), min(PAGEBLOCK_ORDER, top)})
    out["orders"] = orders
    t0 = min(r["ts_ns"] for r in obs)
    # zones without a free page at any sample (all unknown or allocated) have nothing to show
    zones = [z for z in dict.fromkeys(r["zone"] for r in obs)
             if any(r["largest_free_run"] for r in obs if r["zone"] == z)]
    out["zones_without_free_pages"] = [z for z in dict.fromkeys(r["zone"] for r in obs)
                                       if z not in zones]
    for zone in zones:
        for o in orders:
            pts = sorted((r for r in obs if r["zone"] == zone and r["order"] == o),
                         key=lambda r: r["event_index"])
            out["series"].append({
                "label": f"{zone} order {o}", "zone": zone, "order": o,
                "t_s": [(r["ts_ns"] - t0) / 1e9 for r in pts],
                "unusable_index": [r["unusable_index"] for r in pts],
                "fragmentation_index": [r["fragmentation_index"] for r in pts]})
            out["summary"].append({
                "zone": zone, "order": o,
                "unusable_start": pts[0]["unusable_index"],
                "unusable_end": pts[-1]["unusable_index"],
                "fragindex_start": pts[0]["fragmentation_index"],
                "fragindex_end": pts[-1]["fragmentation_index"],
                "largest_free_run_start": pts[0]["largest_free_run"],
                "largest_free_run_end": pts[-1]["largest_free_run"]})
        out["largest_free_run"].append({
            "label": zone, "zone": zone, "t_s": out["series"][-1]["t_s"],
            "largest_free_run": [r["largest_free_run"] for r in pts]})
    return out


def cost_distribution(db: Database, options: ReportOptions, n: int | None) -> dict[str, Any]:
    """Cost percentiles per search at max order `n` under the bar's mode and policy."""
    bar = options.bar
    out: dict[str, Any] = {"max_order": n, "policy": bar.policy, "mode": bar.mode,
                           "searches": []}
    if n is None:
        return out
    rows = named_rows(db, "memarea_cost", mode=bar.mode, max_order=n, policy=bar.policy)
    for s in options.searches:
        mine = [r for r in rows if r["search"] == s]
        if mine:
            out["searches"].append({
                "search": s, "unit": COST_UNITS[s], "requests": mine[0]["requests"],
                "percentile": [r["percentile"] for r in mine],
                "cost": [r["cost"] for r in mine]})
    return out


def collect_sweep(db: Database, options: ReportOptions, dataset: Path) -> dict[str, Any]:
    """The sweep's figures for the report."""
    return {"configs": configs(db, options), "buddy": buddy_work(db, options),
            "fidelity": fidelity(db, dataset), "fragmentation": fragmentation(db, options)}
