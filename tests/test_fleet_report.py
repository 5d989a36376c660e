"""The fleet report's answer on real traces: the fleet's max order against each machine's
own, who holds a lower N back, a machine short of evidence named, two traces' deltas
against counts taken straight from their events."""

from __future__ import annotations

import shutil
from dataclasses import replace

import duckdb
import pytest

from replay.fleet.make import make_fleet_report
from replay.fleet.report import fleet_report
from replay.report.collect import collect
from replay.report.options import ReportOptions
from replay.report.recommend import Bar
from tests.conftest import SAMPLES

TRACES = ("ftrace-thp.dat", "perf-nog.perf.data")
OPTIONS = ReportOptions(max_orders=(8, 9, 10), searches=("linear",), policies=("migrate",))
#: a bar the short sample traces can meet: no minimum of evidence, costs unbounded
LENIENT = Bar(min_duration_s=0, min_requests=1, min_satisfied=0.3, max_p99_ms=1e9,
              max_window_ms=1e9)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    d = tmp_path_factory.mktemp("fleetrep")
    for name in TRACES:
        if not (SAMPLES / name).exists():
            pytest.skip(f"{SAMPLES / name} is not in this checkout")
        shutil.copy(SAMPLES / name, d / name)
    _, runs = make_fleet_report([d / n for n in TRACES], d / "f.html", OPTIONS,
                                quiet=True)
    assert all(r.error is None for r in runs)
    return runs


def _reports(runs, bar: Bar) -> tuple[dict, dict]:
    options = replace(OPTIONS, bar=bar)
    reports = {r.label: collect(r.dataset, options, source=r.source) for r in runs}
    return fleet_report(runs, reports, options), reports


def test_fleet_answer_is_every_machines_lowest(fleet):
    rep, reports = _reports(fleet, LENIENT)
    own = {t: r["recommendation"]["max_order"] for t, r in reports.items()}
    assert None not in own.values()
    f = rep["fleet"]
    assert f["max_order"] == max(own.values())
    assert set(f["worst"]) == {t for t, n in own.items() if n == f["max_order"]}
    # every candidate below the answer is held back by some machine, with its reasons
    below = [n for n in OPTIONS.max_orders if n < f["max_order"]]
    assert [h["max_order"] for h in f["held_back"]] == below
    for h in f["held_back"]:
        assert h["machines"] and all(m["reasons"] for m in h["machines"])
    assert f"N = {f['max_order']}" in f["headline"]


def test_machine_short_of_evidence_holds_the_answer_back(fleet):
    """Only ftrace-thp spans 0.2 s: perf-nog (0.08 s) is named, not dropped."""
    rep, reports = _reports(fleet, replace(LENIENT, min_duration_s=0.2))
    f = rep["fleet"]
    assert reports["ftrace-thp.dat"]["recommendation"]["max_order"] is not None
    assert f["max_order"] is None
    assert [w["trace"] for w in f["without_answer"]] == ["perf-nog.perf.data"]
    assert "not enough evidence" in f["without_answer"][0]["reason"]
    assert "perf-nog.perf.data: not enough evidence" in f["headline"]
    assert {m["trace"] for h in f["held_back"] for m in h["machines"]} >= {
        "perf-nog.perf.data"}


def _per_order(dataset) -> dict[int, int]:
    con = duckdb.connect()
    return dict(con.execute(
        f"SELECT \"order\", count(*) FROM '{dataset}/events.parquet' "
        "WHERE event = 'mm_page_alloc' GROUP BY 1").fetchall())


def test_two_traces_deltas_and_combined_demand(fleet):
    rep, _ = _reports(fleet, OPTIONS.bar)
    a, b = (_per_order(r.dataset) for r in fleet)
    d = rep["deltas"]
    assert (d["a"], d["b"]) == TRACES
    got = {r["order"]: r["requests_delta"] for r in d["orders"]}
    assert got == {o: b.get(o, 0) - a.get(o, 0) for o in set(a) | set(b)}
    total = {r["order"]: r["requests"] for r in rep["combined"]["fleet_orders"]}
    assert total == {o: a.get(o, 0) + b.get(o, 0) for o in set(a) | set(b)}
    assert {r["trace"] for r in rep["combined"]["candidate_rows"]} == set(TRACES)


def test_an_input_given_twice_is_refused(fleet, cli, tmp_path):
    html = tmp_path / "f.html"
    r = cli("report", fleet[0].dataset, fleet[1].dataset, fleet[0].dataset, "-o", html)
    assert r.returncode == 1 and "given twice" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and not html.exists()
