"""The recommendation: the lowest candidate max order a maintainer could sign.

A candidate N must respect the hard constraints (THP needs N >= HPAGE_PMD_ORDER), and
meet the bar on evidence the trace actually holds: the lower 95 % confidence bound
(Wilson) of the share memarea satisfies among the requests that must stay contiguous,
no such request from a caller that cannot sleep, a cost budget per request and per 1 s
window (measured per-page costs, `replay.kernel.costs`), and a net gain (buddy work
saved exceeds memarea work added). Below a minimum of evidence the answer is "not enough
evidence", with what to record next. Feasibility is judged in simulated mode only: the
observed mode replays memarea over the real memory state, whose outcomes are true by
construction, so it is cost evidence only.

The model is dataclasses (`Recommendation` and what it holds), written to report.json
with `dataclasses.asdict`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from replay.kernel import costs
from replay.kernel.requesters import (
    HPAGE_PMD_ORDER,
    HSTATE_IS_GIGANTIC,
    HUGEPAGE_INIT,
    PAGEBLOCK_ORDER_DEF,
)
from replay.report.classes import CandidateDemand, ClassOutcome, Cost

#: z of a two-sided 95 % interval: the Wilson bound below is a 97.5 % one-sided bound.
Z95 = 1.959964
#: the mode whose outcomes are feasibility evidence.
FEASIBILITY_MODE = "simulated"
OBSERVED_NOTE = ("Observed mode (memarea over the real memory state) is cost evidence "
                 "only: its outcomes are true by construction, never evidence that a "
                 "request could be served.")


@dataclass(frozen=True)
class Bar:
    """What a candidate max order N must meet to be recommended."""

    #: memarea policy the slow allocator is allowed (free, reclaim or migrate).
    policy: str = "migrate"
    #: engine mode whose outcomes are judged; only "simulated" is feasibility evidence.
    mode: str = FEASIBILITY_MODE
    #: lowest 95 % lower confidence bound of the share memarea satisfies.
    min_satisfied: float = 0.99
    #: most requests above N that must be contiguous yet cannot sleep.
    max_atomic_above: int = 0
    #: most memarea time per request at p99, in ms (policy choice: a direct compaction
    #: stall of this order is already a complaint).
    max_p99_ms: float = 10.0
    #: most memarea time within any 1 s window, in ms (10 % of one CPU).
    max_window_ms: float = 100.0
    #: minimum of evidence: traced seconds, and requests above the lowest candidate.
    min_duration_s: float = 10.0
    min_requests: int = 50
    #: and, when the layout comes from a zoneinfo snapshot, the share of the zones'
    #: pages the trace touched
    min_touched_share: float = 0.01

    def describe(self) -> str:
        """The bar as one sentence, printed in every report."""
        atomic = ("no request that must stay contiguous above N comes from a caller that "
                  "cannot sleep" if self.max_atomic_above == 0 else
                  f"at most {self.max_atomic_above} requests that must stay contiguous "
                  "above N come from callers that cannot sleep")
        return (
            f"N respects the hard constraints; memarea ({self.policy} policy, {self.mode} "
            f"mode, worst search) satisfies the requests above N that must stay "
            f"contiguous with a 95% lower confidence bound (Wilson) of at least "
            f"{self.min_satisfied:.2%}; {atomic}; memarea costs at most "
            f"{self.max_p99_ms:g} ms per request at p99 and {self.max_window_ms:g} ms in "
            f"any 1 s window; buddy work saved is at least memarea work added; and the "
            f"trace holds at least {self.min_duration_s:g} s and {self.min_requests} "
            f"requests above the lowest candidate, and touches at least "
            f"{self.min_touched_share:.0%} of the zones' pages when the layout is known"
        )

    def as_dict(self) -> dict[str, Any]:
        """The bar's options and its sentence, for report.json."""
        return {**asdict(self), "text": self.describe()}


@dataclass
class Constraint:
    """A hard constraint on N: N >= min_order (None: stated, not a floor)."""

    name: str
    min_order: int | None
    why: str
    source: str
    source_url: str


@dataclass
class Gain:
    """Buddy work saved against memarea work added at one N, in ns."""

    split_steps_saved: int | None
    merge_steps_saved: int | None
    buddy_ns_saved: float | None
    memarea_ns_added: float | None
    net_ns: float | None
    #: migratetype fallbacks (claims + steals) at N and in the traced kernel's replay:
    #: pageblock_order = min(9, N) changes them
    fallbacks: int | None
    fallbacks_baseline: int | None


@dataclass
class Candidate:
    """One candidate N: its figures and whether it meets the bar."""

    max_order: int
    meets: bool
    eligible: bool
    requests_above: int
    #: requests above N memarea must serve, and how many it satisfies (worst search)
    memarea_requests: int
    memarea_satisfied: int | None
    satisfied_share: float | None
    satisfied_lower_bound: float | None
    impossible: int
    search: str | None
    pageblock_order: int
    classes: list[ClassOutcome]
    cost: Cost
    gain: Gain
    reasons: list[str] = field(default_factory=list)


@dataclass
class Evidence:
    """How much the trace shows, against the bar's minimum."""

    duration_s: float | None
    requests: int
    above_order: int
    #: share of the managed pages the trace touched (None: layout not from a snapshot)
    touched_share: float | None
    enough: bool
    missing: list[str]
    record_next: list[str]


@dataclass
class Recommendation:
    """The answer: max order N (None when evidence is short or no N meets the bar)."""

    max_order: int | None
    reason: str
    headline: str
    lowest_tried: bool
    assume_no_thp: bool
    bar: dict[str, Any]
    constraints: list[Constraint]
    evidence: Evidence
    candidates: list[Candidate]
    notes: list[str]


def wilson_lower(successes: int, n: int, z: float = Z95) -> float | None:
    """Lower bound of the Wilson score interval of a share (None when n = 0)."""
    if n == 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / denom)


def constraints(demand: list[CandidateDemand], assume_no_thp: bool) -> list[Constraint]:
    """The hard constraints this trace puts on N."""
    seen = {c.name for d in demand for c in d.classes}
    out = []
    thp = seen & {"thp", "mthp"}
    if thp and not assume_no_thp:
        out.append(Constraint(
            "THP", HPAGE_PMD_ORDER,
            f"the trace has {' and '.join(sorted(thp))} requests: a kernel with "
            f"transparent hugepages needs HPAGE_PMD_ORDER ({HPAGE_PMD_ORDER}) <= "
            "MAX_PAGE_ORDER (hugepage_init: MAYBE_BUILD_BUG_ON)", str(HUGEPAGE_INIT), HUGEPAGE_INIT.url))
    elif assume_no_thp:
        out.append(Constraint(
            "THP", None, "assumed disabled (--assume-no-thp): THP requests in the trace "
            "count as falling back to base pages", str(HUGEPAGE_INIT), HUGEPAGE_INIT.url))
    out.append(Constraint(
        "pageblock_order", None, "pageblock_order = min(HPAGE_PMD_ORDER, N): below 9 the "
        "pageblocks that group migratetypes shrink; each candidate's migratetype "
        "fallbacks are measured against the traced kernel's", str(PAGEBLOCK_ORDER_DEF), PAGEBLOCK_ORDER_DEF.url))
    if "hugetlb" in seen:
        out.append(Constraint(
            "hugetlb", None, "a hugetlb page above N becomes gigantic (hstate_is_gigantic: "
            "order > MAX_PAGE_ORDER) and is allocated by alloc_contig_pages, the "
            "contiguous path: judged here as memarea's", str(HSTATE_IS_GIGANTIC), HSTATE_IS_GIGANTIC.url))
    return out


def evidence(duration_s: float | None, requests: int, above_order: int,
             touched_share: float | None, bar: Bar, has_stacks: bool = False,
             has_layout: bool = False) -> Evidence:
    """Whether the trace holds the minimum of evidence, and what to record next."""
    missing, record = [], []
    if duration_s is None or duration_s < bar.min_duration_s:
        missing.append(f"the trace spans {_secs(duration_s)} (at least "
                       f"{bar.min_duration_s:g} s needed)")
        record.append(f"trace at least {bar.min_duration_s:g} s of the workload"
                      + (" with a nanosecond trace clock" if duration_s is None else ""))
    if requests < bar.min_requests:
        missing.append(f"it holds {requests:,} requests above order {above_order} (at "
                       f"least {bar.min_requests} needed)")
        record.append("trace while the workload makes high-order requests (THP faults, "
                      "hugetlb pool growth, slab and network bursts)")
    if touched_share is not None and touched_share < bar.min_touched_share:
        missing.append(f"it touches {touched_share:.2%} of the zones' pages (at least "
                       f"{bar.min_touched_share:.0%} needed)")
        record.append("trace long enough for the workload to cycle through its memory")
    if missing and not has_stacks:
        record.append("record call stacks (perf record -g) so requesters are classed by "
                      "call path")
    if missing and not has_layout:
        record.append("take /proc snapshots (start-zoneinfo, end-buddyinfo) for the "
                      "memory layout")
    return Evidence(duration_s, requests, above_order, touched_share, not missing, missing,
                    record)


def _secs(s: float | None) -> str:
    return "an unknown time" if s is None else f"{s:.3g} s"


def _gain(d: CandidateDemand, buddy: dict[str, Any] | None,
          baseline: dict[str, Any] | None) -> Gain:
    split = merge = saved = None
    if buddy is not None and baseline is not None:
        split = baseline["split_steps"] - buddy["split_steps"]
        merge = baseline["merge_steps"] - buddy["merge_steps"]
        saved = (split + merge) * costs.BUDDY_NS_PER_STEP
    added = d.cost.ns_total if d.memarea_requests else 0.0
    net = None if saved is None or added is None else saved - added
    return Gain(split, merge, saved, added, net,
                buddy.get("fallbacks") if buddy else None,
                baseline.get("fallbacks") if baseline else None)


def judge(d: CandidateDemand, floor: int, ev: Evidence, bar: Bar,
          buddy: dict[str, Any] | None, baseline: dict[str, Any] | None) -> Candidate:
    """One candidate against the constraints and the bar."""
    n = d.max_order
    reasons = []
    if n < floor:
        reasons.append(f"below the constraint floor N >= {floor}")
    if not ev.enough:
        reasons.append("not enough evidence")
    share = lower = None
    if d.memarea_requests:
        if d.memarea_satisfied is None:
            reasons.append(f"no {bar.mode} results for policy {bar.policy}")
        else:
            share = d.memarea_satisfied / d.memarea_requests
            lower = wilson_lower(d.memarea_satisfied, d.memarea_requests)
            if lower < bar.min_satisfied:
                reasons.append(f"memarea satisfies {d.memarea_satisfied:,} of "
                               f"{d.memarea_requests:,}: lower bound {lower:.2%} < "
                               f"{bar.min_satisfied:.2%}")
    if d.impossible > bar.max_atomic_above:
        reasons.append(f"{d.impossible:,} request(s) above {n} must be contiguous but "
                       "cannot sleep")
    c = d.cost
    if c.ns_p99 is not None and c.ns_p99 > bar.max_p99_ms * 1e6:
        reasons.append(f"memarea p99 {c.ns_p99 / 1e6:.3g} ms > {bar.max_p99_ms:g} ms")
    if c.worst_window_ns is not None and c.worst_window_ns > bar.max_window_ms * 1e6:
        reasons.append(f"worst 1 s window {c.worst_window_ns / 1e6:.3g} ms > "
                       f"{bar.max_window_ms:g} ms")
    gain = _gain(d, buddy, baseline)
    if gain.net_ns is not None and gain.net_ns < 0:
        reasons.append(f"net loss: buddy work saved {gain.buddy_ns_saved / 1e6:.3g} ms < "
                       f"memarea work added {gain.memarea_ns_added / 1e6:.3g} ms")
    above = sum(x.fallback + x.contiguous + x.impossible for x in d.classes)
    return Candidate(n, not reasons, n >= floor, above, d.memarea_requests,
                     d.memarea_satisfied, share, lower, d.impossible, d.search,
                     min(HPAGE_PMD_ORDER, n), d.classes, c, gain, reasons)


def recommend(demand: list[CandidateDemand], ev: Evidence, bar: Bar,
              buddy: dict[int, dict[str, Any]], baseline: dict[str, Any] | None,
              assume_no_thp: bool = False) -> Recommendation:
    """The lowest N meeting the bar such that every larger candidate meets it too (a
    recommendation never rests on a lucky hole in the sweep)."""
    cons = constraints(demand, assume_no_thp)
    floor = max((c.min_order for c in cons if c.min_order is not None), default=0)
    cands = sorted((judge(d, floor, ev, bar, buddy.get(d.max_order), baseline)
                    for d in demand), key=lambda c: c.max_order)
    chosen = None
    for c in reversed(cands):
        if not c.meets:
            break
        chosen = c.max_order
    lowest = bool(cands) and chosen == cands[0].max_order
    if not ev.enough:
        reason = "not enough evidence: " + "; ".join(ev.missing)
    elif chosen is None:
        reason = ("no candidate meets the bar" if any(c.eligible for c in cands) else
                  f"no candidate reaches the constraint floor N >= {floor}")
    else:
        reason = "lowest candidate meeting the bar" + (" (the lowest N tried)"
                                                       if lowest else "")
    rec = Recommendation(chosen if ev.enough else None, reason, "", lowest and ev.enough,
                         assume_no_thp, bar.as_dict(), cons, ev, cands,
                         [OBSERVED_NOTE])
    rec.headline = headline(rec, floor)
    rec.notes += kernel_failure_notes(cands) + pageblock_notes(cands)
    return rec


def pageblock_notes(cands: list[Candidate]) -> list[str]:
    """The measured effect of pageblock_order = min(9, N) on migratetype fallbacks."""
    shown = [c for c in cands if c.gain.fallbacks is not None
             and c.gain.fallbacks_baseline is not None]
    if not shown:
        return []
    base = shown[0].gain.fallbacks_baseline
    return ["Migratetype fallbacks (claims + steals) in the replay, traced kernel "
            f"{base:,}: " + ", ".join(f"N = {c.max_order} (pageblock order "
                                     f"{c.pageblock_order}) {c.gain.fallbacks:,}"
                                     for c in shown) + "."]


def kernel_failure_notes(cands: list[Candidate]) -> list[str]:
    """Where memarea would satisfy what the kernel's buddy allocator failed, and why."""
    out = []
    for c in cands:
        k = sum(x.satisfied_after_kernel_failure or 0 for x in c.classes)
        if k:
            out.append(f"At N = {c.max_order}, memarea satisfies {k:,} request(s) the "
                       "kernel's buddy allocator failed: like alloc_contig_pages, it "
                       "migrates movable pages out of a range where compaction gave up "
                       "(__alloc_contig_migrate_range).")
    return out


def _constraint_text(cons: list[Constraint], floor: int) -> str:
    binding = [c for c in cons if c.min_order is not None and c.min_order == floor]
    return " and ".join(f"{c.name}: N >= {c.min_order}" for c in binding)


def headline(rec: Recommendation, floor: int) -> str:
    """The recommendation, its constraints and its confidence in one sentence."""
    ev = rec.evidence
    cons = _constraint_text(rec.constraints, floor)
    known = f"; known already: {cons}" if cons else ""
    if not ev.enough:
        return ("Not enough evidence to recommend a max order: " + "; ".join(ev.missing)
                + known + ". Record next: " + "; ".join(ev.record_next) + ".")
    n = rec.max_order
    if n is None:
        return f"No candidate max order meets the bar ({rec.reason}){known}."
    c = next(x for x in rec.candidates if x.max_order == n)
    why = ("the lowest N tried" if rec.lowest_tried else
           f"the lowest the constraints allow ({cons})" if cons and n == floor else
           "the lowest candidate meeting the bar")
    if c.memarea_requests:
        conf = (f"memarea must serve {c.memarea_requests:,} requests above it and "
                f"satisfies them with 95% confidence in at least "
                f"{c.satisfied_lower_bound:.1%}")
        if c.cost.ns_p99 is not None:
            conf += f", {c.cost.ns_p99 / 1e6:.3g} ms per request at p99"
    else:
        conf = "no request above it must be served contiguously (memarea: n/a)"
    lost = [f"{x.fallback:,} {x.title} requests fall back to smaller pages"
            for x in c.classes if x.fallback]
    tail = ("; " + "; ".join(lost)) if lost else ""
    return (f"Recommended max order N = {n} (MAX_ORDER {n + 1} in 2001-era terms), "
            f"{why}: {conf}{tail}.")
