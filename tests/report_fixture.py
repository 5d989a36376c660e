"""A small hand-made report dict, for rendering tests that must not depend on the engine."""

from __future__ import annotations

from dataclasses import asdict

from replay.engine.fidelity import Fidelity, Pair, ZoneFidelity

from replay.kernel.requesters import BY_NAME
from replay.report.classes import CandidateDemand, ClassOutcome, Cost
from replay.report.recommend import Bar, evidence, recommend


def _demand(n: int, above: int) -> CandidateDemand:
    """hugetlb order-9 requests above N go to memarea (all satisfied); none else."""
    contiguous = above if n < 9 else 0
    hugetlb = ClassOutcome("hugetlb", BY_NAME["hugetlb"].title, "contiguous", 13, 13 << 9,
                           13 - contiguous, 0, 0, 0, contiguous, contiguous, 0, 0, 0)
    cost = Cost("linear", contiguous, 900.0 * n, 5.0, 900.0 * n * 340, 1e5 * contiguous,
                2e5, 0.0, 0, 800.0 * n * 340)
    return CandidateDemand(n, [hugetlb], "linear", contiguous, contiguous, 0, cost)


def fixture_report() -> dict:
    bar = Bar()
    policies = ["free", "reclaim", "migrate"]
    candidates = []
    rows = []
    configs = []
    above = {3: 80, 4: 15, 5: 15, 6: 15, 7: 15, 8: 13, 9: 0, 10: 0}
    for n, req in above.items():
        cfgs = []
        for p, share in zip(policies, (0.5, 0.9, 0.995 if n >= 5 else 0.9)):
            for s in ("linear", "coalesced", "bitmap"):
                cfgs.append({"max_order": n, "mode": "simulated", "policy": p, "search": s,
                             "requests": req, "satisfied_share": share if req else None,
                             "failed": round(req * (1 - share)), "false_failures": 0,
                             "cost_p50": 100.0 * n, "cost_p90": 400.0 * n,
                             "cost_p99": 900.0 * n, "cost_max": 1000.0 * n,
                             "pages_reclaimed": 3, "pages_migrated": 5})
        cand = {"max_order": n, "requests_above": req, "atomic_above": 1 if n == 3 else 0,
                "configs": cfgs}
        candidates.append(cand)
        configs += cfgs
        rows.append({"max_order": n, "max_order_2001": n + 1, "requests_above": req,
                     "rate_above_per_s": req / 0.37, "atomic_above": cand["atomic_above"],
                     **{f"satisfied_{p}": next(c["satisfied_share"] for c in cfgs
                                               if c["policy"] == p) for p in policies},
                     "pages_above": req << 4, "false_failures": 0,
                     "split_steps_saved": 10 * (10 - n), "merge_steps_saved": 10 * (10 - n)})
    baseline = {"split_steps": 1000, "merge_steps": 900, "fallbacks": 1}
    buddy = {n: {"split_steps": 900 + 10 * n, "merge_steps": 800 + 10 * n, "fallbacks": 1}
             for n in above}
    rec = recommend([_demand(n, min(req, 13)) for n, req in above.items()],
                    evidence(37.0, 80, 3, None, bar), bar, buddy, baseline)
    for r, v in zip(rows, rec.candidates):
        r.update(meets=v.meets, satisfied_lower_bound=v.satisfied_lower_bound,
                 memarea_requests=v.memarea_requests, impossible=v.impossible)
    return {
        "report_version": 1,
        "tool": "replay 0.1.0",
        "generated": "2026-11-25T22:00:00+00:00",
        "options": {"max_orders": list(above), "searches": ["linear", "coalesced", "bitmap"],
                    "policies": policies},
        "max_order_readings": "max order N: the largest order the buddy allocator serves.",
        "provenance": {"title": "sample.trace (Linux 6.18, 0.37 s, 23,864 events)",
                       "summary": [("trace", "sample.trace"), ("events", "23,864")]},
        "demand": {
            "orders": [{"order": o, "requests": r, "failed": 0, "pages": r << o,
                        "rate_per_s": r / 0.37, "atomic": 0, "can_sleep": r}
                       for o, r in [(0, 7022), (2, 2), (3, 65), (4, 60), (8, 2), (9, 13)]],
            "high_order": 4,
            "processes": [{"comm": "python3", "pid": 6346, "requests": 70, "max_order": 9,
                           "pages": 9000, "failed": 0}],
            "gfp": [{"gfp_flags": "GFP_TRANSHUGE", "requests": 60, "min_order": 4,
                     "max_order": 9, "failed": 0}],
            "call_paths": [],
        },
        "candidates": candidates,
        "candidate_rows": rows,
        "configs": configs,
        "buddy": [{"max_order": n, "baseline": n == 10, "allocs": 7000, "frees": 6000,
                   "split_steps": 900 + 10 * n, "merge_steps": 800 + 10 * n,
                   "splits_per_alloc": 0.12, "merges_per_free": 0.13, "lists_per_alloc": 1.1,
                   "split_steps_saved": 10 * (10 - n), "merge_steps_saved": 10 * (10 - n),
                   "fallbacks": 1} for n in above],
        "cost_distribution": {"max_order": 5, "policy": "migrate", "searches": [
            {"search": s, "unit": u, "percentile": [0, 50, 90, 99, 100],
             "cost": [1, 10 * k, 40 * k, 90 * k, 100 * k]}
            for k, (s, u) in enumerate([("linear", "pages"), ("coalesced", "blocks"),
                                        ("bitmap", "words")], 1)]},
        "fragmentation": {"series": [
            {"label": "Normal order 9", "t_s": [0, 0.1, 0.2, 0.3],
             "unusable_index": [10, 50, 40, 60]}],
            "largest_free_run": [{"label": "Normal", "t_s": [0, 0.1, 0.2, 0.3],
                                  "largest_free_run": [4096, 2048, 2048, 1024]}],
            "summary": [{"zone": "Normal", "order": 9, "unusable_start": 10,
                         "unusable_end": 60, "fragindex_start": -1000,
                         "fragindex_end": -1000, "largest_free_run_start": 4096,
                         "largest_free_run_end": 1024}]},
        "fidelity": {**Fidelity(
            baseline_max_order=10, kernel_release="6.18.44", fallback_era="claim/steal (6.15+)",
            world_source="estimate from the start buddyinfo", world_estimate=True,
            requests_above_costly=75, agreement=75, agreement_share=1.0, real_failed=0,
            sim_failed=0, fallbacks=0, extfrag=1,
            zones={"Normal": ZoneFidelity(
                "0/Normal", 557056, 557056, 14695, [5, 4, 3], [5, 4, 3], Pair(23, 23),
                Pair([5, 4, 3], [5, 4, 3]), {}, {}, Pair(21, 22), Pair([5, 4, 2], [6, 4, 2]),
                [5, 4, 2], Pair(10, 12), Pair([0, 200, 500], [0, 250, 500]),
                Pair([-1000, -1000, -1000], [-1000, -1000, -1000]))}).as_dict(),
                     "inconsistencies": {"double_alloc": 0, "free_of_free": 0,
                                         "order_mismatch": 0, "pcp_mismatch": 0}},
        "recommendation": asdict(rec),
        "requester_classes": [{
            "class": "hugetlb", "title": BY_NAME["hugetlb"].title, "orders": "9",
            "requests": 13, "pages": 13 << 9, "failed": 0, "cannot_sleep": 0,
            "when_unavailable": "contiguous", "behaviour": BY_NAME["hugetlb"].behaviour,
            "source": str(BY_NAME["hugetlb"].source),
            "source_url": BY_NAME["hugetlb"].source.url, "since": BY_NAME["hugetlb"].since}],
        "caveats": ["initial state of 12,000 pages unknown: treated as allocated"],
    }
