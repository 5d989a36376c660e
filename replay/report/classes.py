"""Per candidate N and per requester class: what happens to every high-order request.

Every N is judged on the same requests: every mm_page_alloc above the lowest candidate.
At N, a request of order <= N is the buddy allocator's, as it was in the kernel (one that
failed there is a failure at every N >= its order); above N its class decides
(`replay.kernel.requesters`): a class that falls back loses its large page, one that must
be contiguous goes to memarea (the engine's verdict, simulated mode, the bar's policy,
the worst search) unless it cannot sleep, when nothing can serve it.

The classification is the named query's (`request_classes`) CASE, run here per request;
the outcomes are the engine's `requests` rows joined on the event's seq. Vectorized:
one query per input, numpy per N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from replay.database import Database
from replay.kernel import costs
from replay.kernel.requesters import CLASSES, CONTIGUOUS, sql_case
from replay.report.demand import CANNOT_SLEEP

#: 1 s windows for the worst-window figures.
WINDOW_NS = 1_000_000_000
#: the search whose cost is in pages (the others count blocks or bitmap words).
PAGE_SEARCH = "linear"
_NAMES = [c.name for c in CLASSES]
_CONTIG = np.array([c.when_unavailable == CONTIGUOUS for c in CLASSES])


@dataclass
class ClassOutcome:
    """One requester class at one candidate N."""

    name: str
    title: str
    when_unavailable: str
    requests: int
    pages: int
    #: order <= N, served by the buddy allocator as in the kernel
    buddy: int
    #: order <= N, failed in the kernel: a failure at this N too
    failed_in_kernel: int
    #: order > N, the caller falls back to smaller pages
    fallback: int
    fallback_pages: int
    #: order > N, must be contiguous and can sleep: memarea's
    contiguous: int
    contiguous_satisfied: int | None
    contiguous_failed: int | None
    #: of those, the kernel's buddy allocator had failed them and memarea satisfies them
    satisfied_after_kernel_failure: int | None
    #: order > N, must be contiguous but cannot sleep: nothing can serve it
    impossible: int


@dataclass
class Cost:
    """memarea's cost at one N over the requests it must serve (linear search: pages)."""

    search: str | None
    requests: int
    pages_scanned_p99: float | None
    pages_migrated_p99: float | None
    ns_p99: float | None
    ns_total: float | None
    #: the 1 s window with the most memarea time, and the most memarea failures
    worst_window_ns: float | None
    worst_window_start_s: float | None
    worst_window_failed: int | None
    #: observed mode (the real memory state): cost evidence only, never feasibility
    observed_ns_p99: float | None
    per_page: str = costs.SOURCE


@dataclass
class CandidateDemand:
    """Every class's outcome at one N, memarea's worst search and its cost."""

    max_order: int
    classes: list[ClassOutcome]
    #: the search whose outcomes are shown (fewest satisfied), None without results
    search: str | None
    memarea_requests: int
    memarea_satisfied: int | None
    impossible: int
    cost: Cost


def classified_requests(db: Database, low: int) -> pa.Table:
    """Every mm_page_alloc above order `low`, in seq order: its order, time, requester
    class, whether it could not sleep and whether it failed in the kernel."""
    case = sql_case(order='e."order"', gfp="e.gfp_flags", comm="e.comm",
                    path="p.call_path")
    cannot = ", ".join(f"'{c}'" for c in CANNOT_SLEEP)
    return db.fetch(f"""
        WITH paths AS (
            SELECT trace, stack_id,
                   string_agg(coalesce(regexp_replace(symbol, '\\+0x[0-9a-fA-F]+$', ''),
                                       printf('%#x', addr)), ' <- ' ORDER BY depth)
                       AS call_path
            FROM stacks GROUP BY trace, stack_id)
        SELECT e.seq, e."order"::INTEGER AS "order", e.ts_ns,
               {case} AS class,
               alloc_context(e.gfp_flags, e.context) IN ({cannot}) AS cannot_sleep,
               (e.pfn IS NULL AND e.page IS NULL) AS real_failed
        FROM events e
        LEFT JOIN paths p ON p.trace = e.trace AND p.stack_id = e.stack_id
        WHERE e.event = 'mm_page_alloc' AND e."order" > $low
        ORDER BY e.seq""", {"low": low})


def _memarea_rows(db: Database, mode: str, policy: str) -> pa.Table:
    if "requests" not in {r[0] for r in db.sql(
            "SELECT table_name FROM information_schema.tables").fetchall()}:
        return pa.table({"max_order": [], "search": [], "seq": [], "failed": [],
                         "cost": [], "pages_migrated": []})
    return db.fetch("""
        SELECT max_order::INTEGER AS max_order, search::VARCHAR AS search, seq,
               outcome = 'failed' AS failed, cost::DOUBLE AS cost,
               pages_migrated::DOUBLE AS pages_migrated
        FROM requests WHERE mode = $mode AND policy = $policy AND search <> 'none'""",
                    {"mode": mode, "policy": policy})


def _p99(values: np.ndarray) -> float | None:
    return float(np.percentile(values, 99)) if len(values) else None


class _Rows:
    """The memarea rows of one mode, as numpy arrays indexed into the universe."""

    def __init__(self, table: pa.Table, seq: np.ndarray) -> None:
        cols = {k: table.column(k).to_numpy(zero_copy_only=False) for k in table.column_names}
        self.n = cols["max_order"].astype(np.int64)
        self.search = cols["search"].astype(str)
        idx = np.searchsorted(seq, cols["seq"].astype(np.int64))
        idx = np.minimum(idx, max(len(seq) - 1, 0))
        keep = (seq[idx] == cols["seq"]) if len(seq) else np.zeros(len(idx), bool)
        self.idx, self.keep = idx, keep
        self.failed = cols["failed"].astype(bool)
        self.cost = cols["cost"].astype(np.float64)
        self.migrated = cols["pages_migrated"].astype(np.float64)

    def of(self, n: int, search: str) -> np.ndarray:
        return np.flatnonzero((self.n == n) & (self.search == search) & self.keep)


def class_outcomes(db: Database, u: pa.Table, max_orders: tuple[int, ...],
                   searches: tuple[str, ...], policy: str) -> list[CandidateDemand]:
    """Every candidate's per-class outcomes, memarea verdict and cost; `u`: the requests
    above the lowest candidate (`classified_requests`)."""
    seq = u.column("seq").to_numpy().astype(np.int64)
    order = u.column("order").to_numpy().astype(np.int64)
    ts = u.column("ts_ns").to_numpy().astype(np.int64)
    klass = pc.index_in(u.column("class"), value_set=pa.array(_NAMES)).to_numpy(
        zero_copy_only=False).astype(np.int64)
    cannot = u.column("cannot_sleep").to_numpy(zero_copy_only=False).astype(bool)
    real_failed = u.column("real_failed").to_numpy(zero_copy_only=False).astype(bool)
    pages = np.left_shift(np.int64(1), order)
    contig = _CONTIG[klass] if len(klass) else np.zeros(0, bool)
    sim = _Rows(_memarea_rows(db, "simulated", policy), seq)
    obs = _Rows(_memarea_rows(db, "observed", policy), seq)
    t0 = int(ts.min()) if len(ts) else 0
    out = []
    for n in max_orders:
        above = order > n
        mem = above & contig & ~cannot
        # memarea's verdict per search; the worst (fewest satisfied) search decides
        best = None
        for s in searches:
            rows = sim.of(n, s)
            if not len(rows):
                continue
            satisfied = np.zeros(len(seq), bool)
            satisfied[sim.idx[rows]] = ~sim.failed[rows]
            satisfied &= mem
            if best is None or satisfied.sum() < best[1].sum():
                best = (s, satisfied)
        if best is None and not mem.any():  # nothing for memarea: zero of zero
            best = (None, np.zeros(len(seq), bool))
        search, satisfied = best if best else (None, None)
        classes = []
        for i, c in enumerate(CLASSES):
            mine = klass == i
            if not mine.any():
                continue
            m = mine & mem
            classes.append(ClassOutcome(
                c.name, c.title, c.when_unavailable, int(mine.sum()), int(pages[mine].sum()),
                buddy=int((mine & ~above & ~real_failed).sum()),
                failed_in_kernel=int((mine & ~above & real_failed).sum()),
                fallback=int((mine & above & ~contig).sum()),
                fallback_pages=int(pages[mine & above & ~contig].sum()),
                contiguous=int(m.sum()),
                contiguous_satisfied=None if satisfied is None else int((m & satisfied).sum()),
                contiguous_failed=None if satisfied is None else int((m & ~satisfied).sum()),
                satisfied_after_kernel_failure=None if satisfied is None
                else int((m & satisfied & real_failed).sum()),
                impossible=int((mine & above & contig & cannot).sum())))
        out.append(CandidateDemand(
            n, classes, search, int(mem.sum()),
            None if satisfied is None else int(satisfied.sum()),
            int((above & contig & cannot).sum()),
            _cost(n, sim, obs, mem, ts, t0, searches)))
    return out


def _cost(n: int, sim: _Rows, obs: _Rows, mem: np.ndarray, ts: np.ndarray, t0: int,
          searches: tuple[str, ...]) -> Cost:
    """memarea's cost at N in time, from the linear search (pages scanned)."""
    if PAGE_SEARCH not in searches:
        return Cost(None, int(mem.sum()), *([None] * 8))
    rows = sim.of(n, PAGE_SEARCH)
    rows = rows[mem[sim.idx[rows]]]
    ns = costs.memarea_ns(sim.cost[rows], sim.migrated[rows])
    o = obs.of(n, PAGE_SEARCH)
    o = o[mem[obs.idx[o]]]
    worst_ns = worst_start = worst_failed = None
    if len(rows):
        window = (ts[sim.idx[rows]] - t0) // WINDOW_NS
        per = np.bincount(window, weights=ns)
        worst = int(per.argmax())
        worst_ns, worst_start = float(per[worst]), float(worst)
        worst_failed = int(np.bincount(window, weights=sim.failed[rows]).max())
    return Cost(PAGE_SEARCH, len(rows), _p99(sim.cost[rows]), _p99(sim.migrated[rows]),
                _p99(ns), float(ns.sum()) if len(rows) else None, worst_ns, worst_start,
                worst_failed, _p99(costs.memarea_ns(obs.cost[o], obs.migrated[o])))
