"""The fleet report: every trace's report, and one answer for the fleet (report.json).

A trace's figures are its own report's (`replay.report.collect`), untouched. The fleet's
max order is the lowest candidate N that meets the bar on every machine, with every
larger candidate meeting it too (as for one trace: never a lucky hole in the sweep); it
is the highest N any machine needs, so the machines needing it are the worst. A machine
without an answer ("not enough evidence", no candidate meets the bar) holds the fleet's
answer back and is named; a trace that failed (bad input) is listed and not counted.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from replay import __version__
from replay.fleet.run import TraceRun
from replay.report.options import ReportOptions
from replay.report.provenance import MAX_ORDER_READINGS

FLEET_REPORT_VERSION = 1
#: call paths named per machine holding a candidate back
TOP_CALL_PATHS = 5
#: per-order demand figures summed over the fleet
SUMMED = ("requests", "failed", "pages", "atomic", "can_sleep")


def _by_n(rep: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {c["max_order"]: c for c in rep["recommendation"]["candidates"]}


def holder(label: str, rep: dict[str, Any], n: int) -> dict[str, Any]:
    """Why machine `label` holds candidate `n` back: the bar's reasons, the requester
    classes memarea cannot serve above n, and its busiest call paths above n."""
    cand = _by_n(rep)[n]
    classes = [{"class": k["name"], "title": k["title"], "requests": k["requests"],
                "contiguous_failed": k["contiguous_failed"], "impossible": k["impossible"]}
               for k in cand["classes"] if k["contiguous_failed"] or k["impossible"]]
    paths = sorted((p for p in rep["demand"].get("call_paths") or [] if p["order"] > n),
                   key=lambda p: -p["requests"])[:TOP_CALL_PATHS]
    return {"trace": label, "reasons": cand["reasons"], "classes": classes,
            "call_paths": paths}


def fleet_verdict(reports: dict[str, dict[str, Any]], failed: list[str],
                  orders: tuple[int, ...]) -> dict[str, Any]:
    """The fleet's max order and who holds it back (`reports`: the traces that ran)."""
    chosen = None
    for n in sorted(orders, reverse=True):
        if not reports or not all(_by_n(r)[n]["meets"] for r in reports.values()):
            break
        chosen = n
    own = {t: r["recommendation"]["max_order"] for t, r in reports.items()}
    without = [{"trace": t, "reason": reports[t]["recommendation"]["reason"]}
               for t, n in own.items() if n is None]
    worst = ([t for t, n in own.items() if n == chosen] if chosen is not None
             else [w["trace"] for w in without])
    held = [{"max_order": n, "machines": [holder(t, r, n) for t, r in reports.items()
                                          if not _by_n(r)[n]["meets"]]}
            for n in orders if chosen is None or n < chosen]
    return {"max_order": chosen, "machines": len(reports), "worst": worst,
            "per_machine": [{"trace": t, "max_order": n,
                             "reason": reports[t]["recommendation"]["reason"]}
                            for t, n in own.items()],
            "without_answer": without, "held_back": held, "failed": failed,
            "headline": fleet_headline(chosen, len(reports), worst, without, failed)}


def fleet_headline(chosen: int | None, machines: int, worst: list[str],
                   without: list[dict[str, Any]], failed: list[str]) -> str:
    """The fleet's answer in one sentence."""
    if not machines:
        text = "No trace could be replayed: no answer for the fleet."
    elif chosen is not None:
        text = (f"Fleet max order N = {chosen} (MAX_ORDER {chosen + 1} in 2001-era terms): "
                f"the lowest N meeting the bar on all {machines} machine(s); "
                f"the worst, needing it: {', '.join(worst)}.")
    elif without:
        text = ("No max order for the fleet: " + "; ".join(
            f"{w['trace']}: {w['reason']}" for w in without) + ".")
    else:
        text = "No candidate max order meets the bar on every machine."
    if failed:
        text += f" Not counted, failed: {', '.join(failed)}."
    return text


def _tagged(reports: dict[str, dict[str, Any]], pick: Any) -> list[dict[str, Any]]:
    return [{"trace": t, **row} for t, r in reports.items() for row in pick(r)]


def combined(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The traces' tables in one, with a `trace` column, and demand summed per order."""
    orders = _tagged(reports, lambda r: r["demand"]["orders"])
    total: dict[int, dict[str, Any]] = {}
    for row in orders:
        t = total.setdefault(row["order"], {"order": row["order"], "traces": 0,
                                            **dict.fromkeys(SUMMED, 0)})
        t["traces"] += 1
        for k in SUMMED:
            t[k] += row[k] or 0
    return {"orders": orders, "fleet_orders": [total[o] for o in sorted(total)],
            "candidate_rows": _tagged(reports, lambda r: r["candidate_rows"]),
            "configs": _tagged(reports, lambda r: r["configs"]),
            "requester_classes": _tagged(reports, lambda r: r["requester_classes"])}


def _delta(a: Any, b: Any) -> Any:
    return None if a is None or b is None else b - a


def deltas(a: str, ra: dict[str, Any], b: str, rb: dict[str, Any]) -> dict[str, Any]:
    """Two traces compared (two kernels, two runs): b minus a, per order and per N."""
    oa = {r["order"]: r for r in ra["demand"]["orders"]}
    ob = {r["order"]: r for r in rb["demand"]["orders"]}
    orders = []
    for o in sorted(set(oa) | set(ob)):
        row: dict[str, Any] = {"order": o}
        for k in ("requests", "failed", "pages"):
            x, y = oa.get(o, {}).get(k, 0), ob.get(o, {}).get(k, 0)
            row.update({f"{k}_a": x, f"{k}_b": y, f"{k}_delta": y - x})
        orders.append(row)
    ca = {r["max_order"]: r for r in ra["candidate_rows"]}
    cb = {r["max_order"]: r for r in rb["candidate_rows"]}
    cands = []
    for n in sorted(set(ca) & set(cb)):
        row = {"max_order": n, "meets_a": ca[n]["meets"], "meets_b": cb[n]["meets"]}
        for k in ("requests_above", "memarea_requests", "satisfied_lower_bound",
                  "cost_p99_ms", "net_gain_ms"):
            row.update({f"{k}_a": ca[n][k], f"{k}_b": cb[n][k],
                        f"{k}_delta": _delta(ca[n][k], cb[n][k])})
        cands.append(row)
    fa, fb = ra["fidelity"].get("agreement_share"), rb["fidelity"].get("agreement_share")
    return {"a": a, "b": b, "orders": orders, "candidates": cands,
            "max_order": {"a": ra["recommendation"]["max_order"],
                          "b": rb["recommendation"]["max_order"]},
            "agreement_share": {"a": fa, "b": fb, "delta": _delta(fa, fb)}}


def trace_row(run: TraceRun, rep: dict[str, Any] | None) -> dict[str, Any]:
    """One machine's line: its input, its answer or its failure."""
    row: dict[str, Any] = {"trace": run.label, "source": str(run.source),
                           "dataset": str(run.dataset) if run.dataset else None,
                           "status": "failed" if rep is None else "ok", "error": run.error}
    if rep is not None:
        rec, prov = rep["recommendation"], rep["provenance"]
        row.update({"kernel": prov.get("kernel_release"), "duration_s": prov["duration_s"],
                    "events": prov.get("events"), "max_order": rec["max_order"],
                    "enough_evidence": rec["evidence"]["enough"],
                    "reason": rec["reason"],
                    "agreement_share": rep["fidelity"].get("agreement_share")})
    return row


def fleet_report(runs: list[TraceRun], reports: dict[str, dict[str, Any]],
                 options: ReportOptions) -> dict[str, Any]:
    """Every figure of the fleet report (`reports`: per label, the traces that ran)."""
    failed = [r.label for r in runs if r.label not in reports]
    ok = [r.label for r in runs if r.label in reports]
    return {
        "report_version": FLEET_REPORT_VERSION,
        "kind": "fleet",
        "tool": f"replay {__version__}",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": options.as_dict(),
        "max_order_readings": MAX_ORDER_READINGS,
        "traces": [trace_row(r, reports.get(r.label)) for r in runs],
        "fleet": fleet_verdict({t: reports[t] for t in ok}, failed, options.max_orders),
        "combined": combined({t: reports[t] for t in ok}),
        "deltas": deltas(ok[0], reports[ok[0]], ok[1], reports[ok[1]]) if len(ok) == 2
        else None,
        "per_trace": {t: reports[t] for t in ok},
    }
