"""The recommendation's bar and the report's option parsing (synthetic edge cases)."""

from __future__ import annotations

import pytest

from replay.report.options import parse_names, parse_orders, report_options, SEARCHES
from replay.report.recommend import Bar, judge, recommend
from tests.conftest import run_cli


def _cand(n: int, above: int, share: float | None, atomic: int = 0,
          policy: str = "migrate", searches: int = 3) -> dict:
    return {"max_order": n, "requests_above": above, "atomic_above": atomic,
            "configs": [{"mode": "simulated", "policy": policy, "search": s,
                         "satisfied_share": share} for s in SEARCHES[:searches]]}


def test_lowest_n_meeting_the_bar():
    cands = [_cand(3, 90, 0.5), _cand(4, 20, 0.995), _cand(5, 10, 1.0), _cand(9, 0, None)]
    rec = recommend(cands, Bar())
    assert rec["max_order"] == 4
    assert [v["meets"] for v in rec["verdicts"]] == [False, True, True, True]
    assert rec["verdicts"][0]["reasons"] == ["memarea satisfies 50.00% < 99.00%"]


def test_a_hole_in_the_sweep_is_not_recommended():
    """N = 3 meets the bar but N = 4 does not: only N >= 5 is a safe recommendation."""
    cands = [_cand(3, 30, 1.0), _cand(4, 20, 0.2), _cand(5, 10, 1.0)]
    assert recommend(cands, Bar())["max_order"] == 5


def test_atomic_requests_above_n_fail_the_bar():
    v = judge(_cand(5, 10, 1.0, atomic=2), Bar())
    assert not v.meets and v.reasons == ("2 request(s) above 5 cannot sleep",)
    assert judge(_cand(5, 10, 1.0, atomic=2), Bar(max_atomic_above=2)).meets


def test_worst_search_decides_and_other_policies_do_not_count():
    c = _cand(5, 10, 1.0)
    c["configs"][1]["satisfied_share"] = 0.98
    assert judge(c, Bar()).satisfied_share == 0.98
    assert not judge(c, Bar()).meets
    other = _cand(5, 10, 1.0, policy="free")
    v = judge(other, Bar(policy="migrate"))
    assert not v.meets and v.reasons == ("no simulated results for policy migrate",)


def test_none_meets():
    rec = recommend([_cand(3, 5, 0.1), _cand(4, 5, 0.1)], Bar())
    assert rec["max_order"] is None
    assert rec["bar"]["text"].startswith("memarea (migrate policy, simulated mode)")


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
