"""The recommendation on inline traces with known answers (issue 14's done-when cases).

Each trace is small and synthetic, built for one edge of the bar: THP only (the
HPAGE_PMD_ORDER floor), skb-style opportunistic order-3 requests (they fall back: no
memarea below 3), hugetlb pool growth judged at N < 9 (the contiguous path, with cost),
a real order-9 failure (a failure at N >= 9, memarea's verdict below), and a 0.3 s trace
(not enough evidence). Each goes through `replay report` as a user runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replay.report.make import make_report
from replay.report.options import ReportOptions

ORDERS = (2, 3, 8, 9, 10)
THP = "GFP_TRANSHUGE|__GFP_NORETRY|__GFP_THISNODE"
HUGETLB = "GFP_HIGHUSER_MOVABLE|__GFP_NOWARN|__GFP_RETRY_MAYFAIL|__GFP_COMP|__GFP_THISNODE"
SKB = "GFP_NOWAIT|__GFP_IO|__GFP_FS|__GFP_COMP|__GFP_ACCOUNT"


def _line(t: float, event: str, pfn: int | None, order: int, gfp: str | None = None,
          comm: str = "python3-100") -> str:
    page = "0000000000000000" if pfn is None else f"{0xffffea0000000000 + pfn * 64:016x}"
    head = f"{comm:>16}   [000] .....  {t:11.6f}: {event}: page={page} " \
           f"pfn={hex(pfn or 0)} order={order}"
    if event == "mm_page_alloc":
        return f"{head} migratetype=1 gfp_flags={gfp}"
    return head


def _trace(requests: list[tuple[int, str, bool]], span_s: float, base: int = 0x100000,
           comm: str = "python3-100") -> str:
    """One allocation per request (order, gfp, failed), spread evenly over `span_s`
    seconds, each block at its own aligned pfn and freed right after."""
    lines = []
    step = span_s / len(requests)
    for i, (order, gfp, failed) in enumerate(requests):
        pfn = base + (i << 10)
        t = 1.0 + i * step
        lines.append(_line(t, "mm_page_alloc", None if failed else pfn, order, gfp, comm))
        if not failed:
            lines.append(_line(t + step / 2, "mm_page_free", pfn, order, comm=comm))
    return "\n".join(lines) + "\n"


def _report(ingest_text, tmp_path: Path, text: str, orders=ORDERS, **opts) -> dict:
    ds = ingest_text(text)
    html = tmp_path / "out" / "report.html"
    html.parent.mkdir()
    make_report(ds, html, ReportOptions(max_orders=orders, **opts), quiet=True)
    rep = json.loads(html.with_suffix(".json").read_text())
    rep["_md"] = html.with_suffix(".md").read_text()
    rep["_html"] = html.read_text()
    return rep


def _cand(rep: dict, n: int) -> dict:
    return next(c for c in rep["recommendation"]["candidates"] if c["max_order"] == n)


def _klass(rep: dict, n: int, name: str) -> dict:
    return next(k for k in _cand(rep, n)["classes"] if k["name"] == name)


def test_thp_only_trace_recommends_at_least_pmd_order(ingest_text, tmp_path):
    rep = _report(ingest_text, tmp_path, _trace([(9, THP, False)] * 60, 20.0))
    rec = rep["recommendation"]
    assert rec["evidence"]["enough"]
    assert rec["max_order"] is not None and rec["max_order"] >= 9
    thp = [c for c in rec["constraints"] if c["name"] == "THP"]
    assert thp and thp[0]["min_order"] == 9 and "HPAGE_PMD_ORDER" in thp[0]["why"]
    assert "THP: N >= 9" in rec["headline"]
    # below 9 every THP fault becomes base pages: counted, not sent to memarea
    k = _klass(rep, 8, "thp")
    assert (k["fallback"], k["fallback_pages"], k["contiguous"]) == (60, 60 * 512, 0)
    assert _cand(rep, 8)["reasons"][0] == "below the constraint floor N >= 9"
    assert _klass(rep, 9, "thp")["buddy"] == 60
    assert f"Recommended max order N = {rec['max_order']}" in rep["_md"]


def test_assume_no_thp_lifts_the_floor_and_says_so(ingest_text, tmp_path):
    rep = _report(ingest_text, tmp_path, _trace([(9, THP, False)] * 60, 20.0),
                  assume_no_thp=True)
    rec = rep["recommendation"]
    thp = next(c for c in rec["constraints"] if c["name"] == "THP")
    assert thp["min_order"] is None and "--assume-no-thp" in thp["why"]
    assert rec["assume_no_thp"] and "--assume-no-thp" in rep["_md"]
    assert "below the constraint floor N >= 9" not in _cand(rep, 8)["reasons"]


def test_skb_style_requests_fall_back_without_memarea(ingest_text, tmp_path):
    rep = _report(ingest_text, tmp_path, _trace([(3, SKB, False)] * 100, 12.0))
    rows = {r["class"]: r for r in rep["requester_classes"]}
    assert set(rows) == {"network"} and rows["network"]["requests"] == 100
    assert rows["network"]["cannot_sleep"] == 100
    c = _cand(rep, 2)
    k = _klass(rep, 2, "network")
    # they cannot sleep, but they fall back (alloc_skb_with_frags: order--): no blocker
    assert (k["fallback"], k["fallback_pages"], k["contiguous"], k["impossible"]) \
        == (100, 800, 0, 0)
    assert c["memarea_requests"] == 0 and c["satisfied_lower_bound"] is None
    assert not any("cannot sleep" in r for r in c["reasons"])
    assert _klass(rep, 3, "network")["buddy"] == 100
    # nothing must be contiguous: the bottom of the sweep, said as such
    rec = rep["recommendation"]
    assert rec["max_order"] == 2 and rec["lowest_tried"]
    assert "the lowest N tried" in rec["headline"]
    assert "100 network (skb / page_frag) requests fall back" in rec["headline"]


def test_hugetlb_below_pmd_order_goes_the_contiguous_path(ingest_text, tmp_path):
    rep = _report(ingest_text, tmp_path, _trace([(9, HUGETLB, False)] * 60, 12.0))
    rec = rep["recommendation"]
    assert any(c["name"] == "hugetlb" for c in rec["constraints"])
    c = _cand(rep, 8)
    k = _klass(rep, 8, "hugetlb")
    assert (k["contiguous"], k["fallback"], k["impossible"]) == (60, 0, 0)
    assert k["contiguous_satisfied"] + k["contiguous_failed"] == 60
    assert c["memarea_requests"] == 60 and c["cost"]["requests"] == 60
    cost = c["cost"]
    assert cost["ns_p99"] > 0 and cost["pages_scanned_p99"] >= 512
    # 60 requests over 12 s: the worst 1 s window holds a share of the total, not all
    assert cost["ns_total"] / 12 <= cost["worst_window_ns"] < cost["ns_total"]
    assert cost["observed_ns_p99"] is not None  # shown, as cost evidence only
    # 60 of 60 satisfied is not 99 % at 95 % confidence: Wilson bound 60 / (60 + z^2)
    if k["contiguous_satisfied"] == 60:
        assert c["satisfied_lower_bound"] == pytest.approx(60 / (60 + 1.959964 ** 2))
        assert any("lower bound 93.98%" in r for r in c["reasons"])
    assert _klass(rep, 9, "hugetlb")["buddy"] == 60


def test_real_order9_failure_is_a_failure_at_and_above_its_order(ingest_text, tmp_path):
    reqs = [(9, HUGETLB, False)] * 60
    reqs[30] = (9, HUGETLB, True)
    rep = _report(ingest_text, tmp_path, _trace(reqs, 12.0))
    for n in (9, 10):
        k = _klass(rep, n, "hugetlb")
        assert (k["buddy"], k["failed_in_kernel"]) == (59, 1)
    k = _klass(rep, 8, "hugetlb")
    assert k["contiguous"] == 60 and k["failed_in_kernel"] == 0
    after = k["satisfied_after_kernel_failure"]
    assert after in (0, 1)
    notes = " ".join(rep["recommendation"]["notes"])
    assert ("kernel's buddy allocator failed" in notes) == bool(after)
    # both verdicts are in the per-class table of the Markdown
    assert "| 8 | hugetlb pool page | 60 | 0 | 0 | 0 | 0 | 60 |" in rep["_md"]
    assert "| 9 | hugetlb pool page | 60 | 59 | 1 |" in rep["_md"]


def test_a_short_trace_is_not_enough_evidence(ingest_text, tmp_path):
    rep = _report(ingest_text, tmp_path, _trace([(9, HUGETLB, False)] * 60, 0.3))
    rec = rep["recommendation"]
    assert rec["max_order"] is None
    assert rec["reason"] == "not enough evidence: the trace spans 0.297 s (at least 10 s " \
        "needed)"
    assert rec["headline"].startswith("Not enough evidence")
    assert "Record next:" in rec["headline"] and rec["evidence"]["record_next"]
    assert not any(c["meets"] for c in rec["candidates"])
    for out in (rep["_md"], rep["_html"]):
        assert "Not enough evidence" in out and "cost evidence only" in out
