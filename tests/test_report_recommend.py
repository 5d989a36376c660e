"""The recommendation's bar on the typed model, and the report's option parsing
(synthetic edge cases)."""

from __future__ import annotations

import pytest

from replay.kernel import costs
from replay.report.classes import CandidateDemand, ClassOutcome, Cost
from replay.report.options import parse_names, parse_orders, report_options, SEARCHES
from replay.report.recommend import Bar, evidence, recommend, wilson_lower
from tests.conftest import run_cli


def _demand(n: int, contiguous: int = 0, satisfied: int | None = None, impossible: int = 0,
            ns_p99: float | None = None, window_ns: float | None = None,
            ns_total: float | None = 0.0, fallback: int = 0,
            klass: str = "hugetlb") -> CandidateDemand:
    """A candidate's demand: `contiguous` requests above N for memarea (`satisfied` of
    them), `impossible` that cannot sleep, `fallback` THP faults that fall back."""
    satisfied = contiguous if satisfied is None else satisfied
    classes = [ClassOutcome(klass, klass, "contiguous", contiguous + impossible, 512, 0, 0,
                            0, 0, contiguous, satisfied, contiguous - satisfied, 0,
                            impossible)]
    if fallback:
        classes.append(ClassOutcome("thp", "THP (PMD order)", "fallback", fallback,
                                    fallback << 9, 0, 0, fallback, fallback << 9, 0, 0, 0,
                                    0, 0))
    cost = Cost("linear", contiguous, 512.0, 0.0, ns_p99, ns_total, window_ns, 0.0, 0, None)
    return CandidateDemand(n, classes, "linear", contiguous, satisfied, impossible, cost)


ENOUGH = evidence(60.0, 1000, 3, None, Bar())


def _rec(demand, ev=ENOUGH, bar=Bar(), buddy=None, baseline=None, **kw):
    return recommend(demand, ev, bar, buddy or {}, baseline, **kw)


@pytest.mark.parametrize("successes, n, lower", [
    (8, 10, 0.4902), (10, 10, 10 / (10 + 1.959964 ** 2)), (0, 10, 0.0), (50, 100, 0.4038)])
def test_wilson_lower_bound(successes, n, lower):
    """Against published Wilson score intervals (95 %): 8/10 -> [0.490, 0.943];
    50/100 -> [0.404, 0.596]; all successes -> n / (n + z^2)."""
    assert wilson_lower(successes, n) == pytest.approx(lower, abs=5e-5)
    assert wilson_lower(0, 0) is None


def test_lowest_n_meeting_the_bar():
    rec = _rec([_demand(3, 1000, 900), _demand(4, 1000), _demand(5, 500), _demand(9)])
    assert rec.max_order == 4 and not rec.lowest_tried
    assert [c.meets for c in rec.candidates] == [False, True, True, True]
    assert rec.candidates[0].reasons == ["memarea satisfies 900 of 1,000: lower bound "
                                         "87.98% < 99.00%"]
    assert rec.candidates[3].satisfied_lower_bound is None  # n/a: nothing to serve
    assert "N = 4" in rec.headline and "99.6%" in rec.headline


def test_the_point_share_is_not_the_bar():
    """100 of 100 satisfied: a point share of 100 %, but only 96.3 % at 95 % confidence."""
    rec = _rec([_demand(5, 100), _demand(9)])
    assert rec.candidates[0].satisfied_share == 1.0
    assert not rec.candidates[0].meets and rec.max_order == 9


def test_a_hole_in_the_sweep_is_not_recommended():
    rec = _rec([_demand(3, 1000), _demand(4, 1000, 10), _demand(5, 1000)])
    assert rec.max_order == 5


def test_bottom_of_the_sweep_is_said_so():
    rec = _rec([_demand(3), _demand(4)])
    assert rec.max_order == 3 and rec.lowest_tried
    assert "the lowest N tried" in rec.headline and "the lowest N tried" in rec.reason


def test_thp_floor_is_a_hard_constraint():
    rec = _rec([_demand(3, fallback=5), _demand(8, fallback=5), _demand(9)])
    assert rec.max_order == 9
    assert [c.name for c in rec.constraints if c.min_order == 9] == ["THP"]
    assert rec.candidates[0].reasons == ["below the constraint floor N >= 9"]
    assert "(THP: N >= 9)" in rec.headline
    free = _rec([_demand(3, fallback=5), _demand(9)], assume_no_thp=True)
    assert free.max_order == 3 and free.assume_no_thp
    assert "5 THP (PMD order) requests fall back to smaller pages" in free.headline
    below = _rec([_demand(3, fallback=5), _demand(8, fallback=5)])
    assert below.max_order is None and "floor N >= 9" in below.reason


def test_impossible_cost_and_window_fail_the_bar():
    bar = Bar()
    v = _rec([_demand(5, 1000, impossible=2)]).candidates[0]
    assert v.reasons == ["2 request(s) above 5 must be contiguous but cannot sleep"]
    assert _rec([_demand(5, 1000, impossible=2)], bar=Bar(max_atomic_above=2)).max_order == 5
    v = _rec([_demand(5, 1000, ns_p99=bar.max_p99_ms * 2e6)]).candidates[0]
    assert v.reasons == ["memarea p99 20 ms > 10 ms"]
    v = _rec([_demand(5, 1000, window_ns=bar.max_window_ms * 1.5e6)]).candidates[0]
    assert v.reasons == ["worst 1 s window 150 ms > 100 ms"]


def test_net_gain_against_the_traced_kernel():
    base = {"split_steps": 1000, "merge_steps": 1000, "fallbacks": 4}
    buddy = {5: {"split_steps": 900, "merge_steps": 900, "fallbacks": 330}}
    ok = _rec([_demand(5, 1000, ns_total=100.0)], buddy=buddy, baseline=base)
    g = ok.candidates[0].gain
    assert (g.split_steps_saved, g.merge_steps_saved) == (100, 100)
    assert g.net_ns == pytest.approx(200 * costs.BUDDY_NS_PER_STEP - 100.0)
    assert (g.fallbacks, g.fallbacks_baseline) == (330, 4) and ok.max_order == 5
    assert ("Migratetype fallbacks (claims + steals) in the replay, traced kernel 4: "
            "N = 5 (pageblock order 5) 330.") in ok.notes
    loss = _rec([_demand(5, 1000, ns_total=1e9)], buddy=buddy, baseline=base)
    assert loss.max_order is None
    assert loss.candidates[0].reasons[0].startswith("net loss: buddy work saved")


def test_not_enough_evidence_gives_no_number():
    ev = evidence(0.37, 75, 3, None, Bar())
    assert not ev.enough and len(ev.missing) == 1 and ev.record_next
    rec = _rec([_demand(3), _demand(9)], ev=ev)
    assert rec.max_order is None
    assert rec.reason == "not enough evidence: the trace spans 0.37 s (at least 10 s needed)"
    assert rec.headline.startswith("Not enough evidence") and "Record next:" in rec.headline
    assert not evidence(60.0, 10, 3, None, Bar()).enough
    short = evidence(60.0, 1000, 3, 0.001, Bar())
    assert short.missing == ["it touches 0.10% of the zones' pages (at least 1% needed)"]
    assert evidence(60.0, 1000, 3, 0.5, Bar()).enough


def test_observed_mode_is_only_cost_evidence():
    rec = _rec([_demand(3)])
    assert "cost evidence only" in rec.notes[0]
    assert rec.bar["mode"] == "simulated" and "simulated mode" in rec.bar["text"]


@pytest.mark.parametrize("text, orders", [
    ("3..10", tuple(range(3, 11))), ("5,6,10", (5, 6, 10)), ("3..5,8", (3, 4, 5, 8)),
    ("9, 4,4", (4, 9)), ("7", (7,))])
def test_parse_orders(text, orders):
    assert parse_orders(text) == orders


@pytest.mark.parametrize("text", ["", "x", "5..3", "3..", "-1", "3..99", "1.5"])
def test_parse_orders_refuses(text):
    with pytest.raises(ValueError):
        parse_orders(text)


def test_parse_names_keeps_canonical_order():
    assert parse_names("bitmap,linear", SEARCHES, "search") == ("linear", "bitmap")
    with pytest.raises(ValueError, match="unknown search"):
        parse_names("linear,fast", SEARCHES, "search")


def test_assume_no_thp_is_an_option_of_the_command_line():
    assert report_options("3..10", "linear", "migrate", "migrate", 0.99,
                          assume_no_thp=True).assume_no_thp
    assert not report_options("3..10", "linear", "migrate", "migrate", 0.99).assume_no_thp
    r = run_cli("report", "--help")
    assert r.returncode == 0 and "--assume-no-thp" in r.stdout


def test_bar_policy_must_be_swept():
    with pytest.raises(ValueError, match="--bar-policy migrate"):
        report_options("3..10", "linear", "free,reclaim", "migrate", 0.99)


@pytest.mark.parametrize("args, message", [
    (["--max-order", "5..3"], "orders must rise"),
    (["--policy", "teleport"], "unknown policy"),
    (["--min-satisfied", "1.5"], "not a share"),
])
def test_cli_refuses_bad_options(tmp_path, args, message):
    r = run_cli("report", tmp_path, *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_cli_refuses_missing_and_garbage_input(tmp_path):
    r = run_cli("report", tmp_path / "nope.dat")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{tmp_path / 'nope.dat'}: no such trace or dataset" in r.stderr
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"\x00\x01 not a trace\n" * 50)
    r = run_cli("report", junk)
    assert r.returncode == 1 and "Traceback" not in r.stderr and str(junk) in r.stderr
    assert not (tmp_path / "junk.txt.replay").exists()
    r = run_cli("report", tmp_path)  # a directory that is not a dataset
    assert r.returncode == 1 and "not a replay dataset" in r.stderr
