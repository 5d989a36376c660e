"""The service's pages: server-rendered HTML; static/app.js adds the live parts (upload,
job progress, the SQL console). Nothing is fetched from the network."""

from __future__ import annotations

from html import escape
from typing import Any

from replay.queries import NamedQuery
from replay.serve.catalogue import FINAL, Job


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _events(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else _e(n)


def _seconds(s: Any) -> str:
    return f"{s:.3g} s" if isinstance(s, (int, float)) else ""


def layout(title: str, body: str, token_required: bool) -> str:
    """A page: the navigation, the write token's field when writes need one, `body`."""
    token = ('<label class="token">token <input id="token" type="password" '
             'autocomplete="off" placeholder="for uploads and deletes"></label>'
             if token_required else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · replay</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
</head><body data-token-required="{str(token_required).lower()}">
<header><a class="home" href="/">replay</a> <a href="/compare">compare</a>{token}</header>
<main>
{body}
</main></body></html>
"""


def error_page(message: str, token_required: bool) -> str:
    """A page saying what was wrong (an unknown dataset, a missing report)."""
    return layout("error", f'<p class="error">{_e(message)}</p>', token_required)


def _job_row(job: Job) -> str:
    link = (f'<a href="/datasets/{_e(job.dataset)}">{_e(job.dataset)}</a>'
            if job.state == "done" else _e(job.dataset))
    active = "" if job.state in FINAL else " active"
    return (f'<tr class="job{active}" data-job="{_e(job.id)}" data-state="{_e(job.state)}">'
            f'<td>{_e(job.filename)}</td><td class="dataset">{link}</td>'
            f'<td class="state">{_e(job.state)}</td><td class="phase">{_e(job.phase)}</td>'
            f'<td><progress max="1" value="{job.progress:.3f}"></progress></td>'
            f'<td class="error">{_e(job.error)}</td></tr>')


def index_page(datasets: list[dict[str, Any]], jobs: list[Job], max_upload: int,
               token_required: bool) -> str:
    """`/`: the datasets, the jobs with live progress, the upload form."""
    rows = "\n".join(
        f'<tr data-dataset="{_e(d["id"])}"><td><a href="/datasets/{_e(d["id"])}">'
        f'{_e(d["id"])}</a></td><td>{_e(d["format"])}</td><td>{_e(d["kernel"])}</td>'
        f'<td class="num">{_events(d["events"])}</td>'
        f'<td class="num">{_seconds(d["duration_s"])}</td><td>{_e(d["origin"])}</td>'
        f'<td>{"report" if d["report"] else ""}</td>'
        f'<td><button class="delete" data-dataset="{_e(d["id"])}">delete</button></td></tr>'
        for d in datasets)
    table = (f'<table id="datasets"><thead><tr><th>dataset</th><th>format</th>'
             f'<th>kernel</th><th>events</th><th>duration</th><th>origin</th><th></th>'
             f'<th></th></tr></thead><tbody>{rows}</tbody></table>'
             if datasets else '<p id="datasets">No datasets yet: upload a trace.</p>')
    job_rows = "\n".join(_job_row(j) for j in jobs)
    body = f"""<h1>Datasets</h1>
{table}
<h2>Upload a trace</h2>
<form id="upload" class="drop" method="post" action="/api/traces" enctype="multipart/form-data">
<p>Drop a trace here (trace.dat, perf.data or text; gzip, zstd or xz), or
<input id="trace" type="file" name="trace"> <button type="submit">upload</button></p>
<p class="note">At most {max_upload / (1 << 20):,.0f} MiB. The service ingests it, sweeps
the candidate max orders and writes the report; the job below shows how far it is.</p>
<p id="upload-error" class="error"></p>
</form>
<h2>Jobs</h2>
<table id="jobs"><thead><tr><th>file</th><th>dataset</th><th>state</th><th>phase</th>
<th>progress</th><th>error</th></tr></thead><tbody>{job_rows}</tbody></table>
"""
    return layout("datasets", body, token_required)


def _query_form(q: NamedQuery) -> str:
    params = "".join(
        f'<label title="{_e(p.help)}">{_e(p.name)} <input name="{_e(p.name)}" '
        f'placeholder="{_e(p.default)}"></label> ' for p in q.params)
    return (f'<form class="named" data-query="{_e(q.name)}"><button type="submit">'
            f'{_e(q.name)}</button> <span class="note">{_e(q.description)}</span> '
            f'{params}</form>')


def dataset_page(dataset: str, summary: dict[str, Any], has_report: bool,
                 queries: list[NamedQuery], token_required: bool) -> str:
    """A dataset: its provenance, its report, the named queries and the SQL console."""
    facts = (f'{_e(summary["format"])}, kernel {_e(summary["kernel"])}, '
             f'{_events(summary["events"])} events over {_seconds(summary["duration_s"])}')
    report = (f'<iframe id="report" src="/datasets/{_e(dataset)}/report" '
              f'title="report"></iframe><p><a href="/datasets/{_e(dataset)}/report">'
              f'report alone</a> · <a href="/api/datasets/{_e(dataset)}/report.json">'
              f'report.json</a> · <a href="/api/datasets/{_e(dataset)}">meta.json</a></p>'
              if has_report else
              f'<p>No report for this dataset (<a href="/api/datasets/{_e(dataset)}">'
              f'meta.json</a>).</p>')
    forms = "\n".join(_query_form(q) for q in queries)
    body = f"""<h1>{_e(dataset)}</h1>
<p class="facts">{facts}</p>
<div id="console" data-dataset="{_e(dataset)}">
<h2>SQL</h2>
<p class="note">Views: events, allocs, stacks, datasets; requests, runs and series of the
report's sweep. Read-only, one statement.</p>
<form id="sql"><textarea name="sql" rows="4" spellcheck="false">SELECT "order", count(*) AS requests
FROM allocs GROUP BY ALL ORDER BY 1</textarea>
<button type="submit">run</button> <span class="note">Ctrl+Enter</span></form>
<details><summary>Named queries</summary>{forms}</details>
<pre id="sql-error" class="error" hidden></pre>
<p id="sql-status" class="note"></p>
<div id="result"></div>
</div>
<h2>Report</h2>
{report}
"""
    return layout(dataset, body, token_required)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return _e(v)


def _table(rows: list[dict[str, Any]]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r
                              if not isinstance(r[k], (dict, list))))
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(value: Any) -> str:
    """A report section as HTML: tables for lists of records, lines for the rest."""
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
                parts.append(f"<h4>{_e(k)}</h4>{_table(v)}")
            elif isinstance(v, (dict, list)):
                parts.append(f"<h4>{_e(k)}</h4><div class='nest'>{_section(v)}</div>")
            else:
                parts.append(f"<p><b>{_e(k)}</b>: {_cell(v)}</p>")
        return "".join(parts)
    if isinstance(value, list):
        if value and all(isinstance(r, dict) for r in value):
            return _table(value)
        return "<ul>" + "".join(f"<li>{_e(v)}</li>" for v in value) + "</ul>"
    return f"<p>{_cell(value)}</p>"


def _orders(demand: Any) -> dict[Any, Any]:
    """Requests per order from a report's demand, when it lists them (else empty)."""
    rows = demand.get("orders") if isinstance(demand, dict) else None
    if not isinstance(rows, list):
        return {}
    return {r["order"]: r["requests"] for r in rows
            if isinstance(r, dict) and "order" in r and "requests" in r}


def _headline(result: dict[str, Any]) -> str:
    """The two recommendations and the requests per order, in one table."""
    a, b = result["a"], result["b"]
    orders_a, orders_b = _orders(a["demand"]), _orders(b["demand"])
    head = f'<tr><th></th><th>{_e(a["dataset"])}</th><th>{_e(b["dataset"])}</th></tr>'
    rec = ["none" if side["max_order"] is None else side["max_order"] for side in (a, b)]
    rows = [f'<tr><th>recommended max order</th><td class="num">{_e(rec[0])}</td>'
            f'<td class="num">{_e(rec[1])}</td></tr>']
    for order in sorted(set(orders_a) | set(orders_b)):
        rows.append(f'<tr><th>order {_e(order)} requests</th>'
                    f'<td class="num">{_cell(orders_a.get(order, 0))}</td>'
                    f'<td class="num">{_cell(orders_b.get(order, 0))}</td></tr>')
    return f'<table class="headline"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def compare_page(ids: list[str], a: str | None, b: str | None,
                 result: dict[str, Any] | None, error: str | None,
                 token_required: bool) -> str:
    """Two datasets' recommendation and demand side by side."""
    def select(name: str, chosen: str | None) -> str:
        opts = "".join(f'<option{" selected" if i == chosen else ""}>{_e(i)}</option>'
                       for i in ids)
        return f'<select name="{name}">{opts}</select>'

    body = (f'<h1>Compare</h1><form method="get" action="/compare">{select("a", a)} '
            f'{select("b", b)} <button type="submit">compare</button></form>')
    if error:
        body += f'<p class="error">{_e(error)}</p>'
    if result:
        cols = []
        for key in ("a", "b"):
            side = result[key]
            n = side["max_order"]
            verdict = (f"recommended max order: <b>{_e(n)}</b>" if n is not None else
                       "no recommended max order (not enough evidence or none meets the bar)")
            cols.append(f'<section><h2><a href="/datasets/{_e(side["dataset"])}">'
                        f'{_e(side["dataset"])}</a></h2><p class="verdict">{verdict}</p>'
                        f'<h3>Demand</h3>{_section(side["demand"])}'
                        f'<h3>Recommendation</h3>{_section(side["recommendation"])}</section>')
        body += _headline(result) + f'<div class="compare">{"".join(cols)}</div>'
    return layout("compare", body, token_required)
